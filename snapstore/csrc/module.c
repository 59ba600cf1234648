/* snapstore._kernel: the Python face of the plain-C hot loops in this folder.  It only
 * converts and checks arguments, calls kernel.h, and turns results into Python objects;
 * SK_NOMEM becomes MemoryError and SK_INVALID a ValueError carrying the reason.
 * snapstore/kernel.py is the one caller: it routes each call and its fallback. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "kernel.h"

static PyObject *failed(int status, const char *why) {
    if (status == SK_NOMEM) return PyErr_NoMemory();
    PyErr_SetString(PyExc_ValueError, why ? why : "invalid arguments");
    return NULL;
}

/* A C-contiguous array of 8-byte numbers of buffer format `format` or `alias`. */
static int get_8byte(PyObject *object, Py_buffer *view, const char *format, const char *alias, const char *what) {
    if (PyObject_GetBuffer(object, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != 8 || view->len % 8 ||
        (view->format && strcmp(view->format, format) && (!alias || strcmp(view->format, alias)))) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "expected an %s array", what);
        return -1;
    }
    return 0;
}

static int get_int64s(PyObject *object, Py_buffer *view) { return get_8byte(object, view, "q", "l", "int64"); }

static int get_float64s(PyObject *object, Py_buffer *view, Py_ssize_t count) {
    if (get_8byte(object, view, "d", NULL, "float64") < 0) return -1;
    if (view->len / 8 != count) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "expected float64 arrays of one value per row (three for r and v)");
        return -1;
    }
    return 0;
}

static PyObject *bytes_of(sk_buffer *b) {
    PyObject *out = PyBytes_FromStringAndSize(b->data ? b->data : "", (Py_ssize_t)b->size);
    sk_buffer_free(b);
    return out;
}

static PyObject *slices_of(const sk_interner *t) {
    PyObject *list = PyList_New((Py_ssize_t)t->count);
    for (size_t i = 0; list && i < t->count; i++) {
        PyObject *item = PyBytes_FromStringAndSize(t->base + t->start[i], (Py_ssize_t)t->length[i]);
        if (!item) Py_CLEAR(list);
        else PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

/* An unfinished root's open kinds as bytes: int64 depth, int64 length of each kind, then
 * the names; the reader keeps them opaque and passes them back. */
static PyObject *state_bytes(const sk_split_state *state) {
    if (!state->depth) Py_RETURN_NONE;
    size_t names = 0;
    for (size_t d = 0; d < state->depth; d++) names += state->length[d];
    size_t head = 8 * (1 + state->depth);
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(head + names));
    if (!out) return NULL;
    char *at = PyBytes_AS_STRING(out);
    int64_t number = (int64_t)state->depth;
    memcpy(at, &number, 8);
    char *name = at + head;
    for (size_t d = 0; d < state->depth; d++) {
        number = (int64_t)state->length[d];
        memcpy(at + 8 * (1 + d), &number, 8);
        memcpy(name, state->kind[d], state->length[d]);
        name += state->length[d];
    }
    return out;
}

/* The open kinds `state_bytes` wrote, pointing into `object` (alive for the call). */
static int state_from_bytes(PyObject *object, sk_split_state *state) {
    size_t size = (size_t)PyBytes_GET_SIZE(object);
    const char *data = PyBytes_AS_STRING(object);
    int64_t number;
    if (size < 8) goto invalid;
    memcpy(&number, data, 8);
    if (number < 1 || number > SK_MAX_SPLIT_DEPTH || 8 * (1 + (size_t)number) > size) goto invalid;
    state->depth = (size_t)number;
    size_t name = 8 * (1 + state->depth);
    for (size_t d = 0; d < state->depth; d++) {
        memcpy(&number, data + 8 * (1 + d), 8);
        if (number < 0 || (size_t)number > size - name) goto invalid;
        state->kind[d] = (const uint8_t *)data + name;
        state->length[d] = (size_t)number;
        name += (size_t)number;
    }
    if (name != size) goto invalid;
    return 0;
invalid:
    failed(SK_INVALID, "a resumed scan's state is not one split_roots wrote");
    return -1;
}

/* split_roots(text, start, resume=None) -> (ends, stop, unfinished, resume) | None (text not
 * one byte a character); resume: the open kinds of a root the text leaves unfinished, or None;
 * given back, the text from start goes on with that root. */
static PyObject *split_roots(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *text, *resume_object = Py_None;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "Un|O", &text, &start, &resume_object)) return NULL;
    if (PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND) Py_RETURN_NONE;
    if (start < 0) return failed(SK_INVALID, "the start lies outside the text");
    if (resume_object != Py_None && !PyBytes_Check(resume_object)) {
        PyErr_SetString(PyExc_TypeError, "resume must be bytes or None");
        return NULL;
    }
    sk_split_state *states = PyMem_Malloc(2 * sizeof(sk_split_state)); /* 8 KiB: kept off the stack */
    if (!states) return PyErr_NoMemory();
    sk_split_state *resume = NULL;
    if (resume_object != Py_None) {
        if (state_from_bytes(resume_object, &states[0]) < 0) {
            PyMem_Free(states);
            return NULL;
        }
        resume = &states[0];
    }
    sk_buffer ends = {0};
    size_t stop;
    int unfinished;
    const char *why = NULL;
    int status = sk_split_roots(PyUnicode_1BYTE_DATA(text), (size_t)PyUnicode_GET_LENGTH(text), (size_t)start,
                                resume, &ends, &stop, &unfinished, &states[1], &why);
    PyObject *result = NULL;
    if (status < 0) {
        failed(status, why);
    } else {
        size_t count = ends.size / 8;
        PyObject *list = PyList_New((Py_ssize_t)count);
        for (size_t i = 0; list && i < count; i++) {
            PyObject *offset = PyLong_FromLongLong(((int64_t *)ends.data)[i]);
            if (!offset) Py_CLEAR(list);
            else PyList_SET_ITEM(list, (Py_ssize_t)i, offset);
        }
        PyObject *state = list ? state_bytes(&states[1]) : NULL;
        if (list && state) result = Py_BuildValue("(NniN)", list, (Py_ssize_t)stop, unfinished, state);
        else {
            Py_XDECREF(list);
            Py_XDECREF(state);
        }
    }
    sk_buffer_free(&ends);
    PyMem_Free(states);
    return result;
}

static const char *SCAN_NAMES[SK_SCAN_ARRAYS] = {"line_start", "line_end", "owner", "opens", "closes", "closed",
                                                 "depth", "kind", "entry_line", "entry_prefix", "entry_start",
                                                 "entry_end", "entry_width"};

static int set_item(PyObject *dict, const char *name, PyObject *value) {
    if (!value) return -1;
    int status = PyDict_SetItemString(dict, name, value);
    Py_DECREF(value);
    return status;
}

/* scan(body) -> dict of int64 arrays (as bytes), content flags, kinds and prefixes;
 * ValueError for a body that is not one well-formed story. */
static PyObject *scan(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    sk_scan_result r;
    const char *why = NULL;
    int status = sk_scan(view.buf, (size_t)view.len, &r, &why);
    PyObject *result = NULL;
    if (status < 0) {
        failed(status, why);
        goto done;
    }
    result = PyDict_New();
    for (int i = 0; result && i < SK_SCAN_ARRAYS; i++)
        if (set_item(result, SCAN_NAMES[i], bytes_of(&r.arrays[i])) < 0) Py_CLEAR(result);
    if (result && (set_item(result, "content", bytes_of(&r.content)) < 0 ||
                   set_item(result, "kinds", slices_of(&r.kinds)) < 0 ||
                   set_item(result, "prefixes", slices_of(&r.prefixes)) < 0))
        Py_CLEAR(result);
    sk_scan_free(&r);
done:
    PyBuffer_Release(&view);
    return result;
}

/* type_column(body, starts, ends, width) -> ("i", int64 bytes) | ("f", float64 bytes, code
 * bytes, bad-token bytes) | None, as Column.fill types body[starts[k]:ends[k]]. */
static PyObject *type_column(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer body, starts, ends;
    PyObject *starts_object, *ends_object, *result = NULL;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "y*OOn", &body, &starts_object, &ends_object, &width)) return NULL;
    if (get_int64s(starts_object, &starts) < 0) goto release_body;
    if (get_int64s(ends_object, &ends) < 0) goto release_starts;
    if (starts.len != ends.len || width < 1) {
        failed(SK_INVALID, "starts and ends differ in length, or the width is below 1");
        goto release_ends;
    }
    sk_typed typed;
    const char *why = NULL;
    int status = sk_type_column(body.buf, (size_t)body.len, starts.buf, ends.buf, (size_t)starts.len / 8,
                                (size_t)width, &typed, &why);
    if (status == SK_DECLINED) {
        result = Py_NewRef(Py_None);
    } else if (status < 0) {
        failed(status, why);
    } else {
        Py_ssize_t count = (Py_ssize_t)typed.count;
        result = typed.type == 'i' ? Py_BuildValue("(sy#)", "i", (char *)typed.numbers, count * 8)
                                   : Py_BuildValue("(sy#y#y#)", "f", (char *)typed.numbers, count * 8,
                                                   (char *)typed.codes, count, (char *)typed.bad, count);
        sk_typed_free(&typed);
    }
release_ends:
    PyBuffer_Release(&ends);
release_starts:
    PyBuffer_Release(&starts);
release_body:
    PyBuffer_Release(&body);
    return result;
}

/* intern_templates(items int32, owner, closed, node_kind) -> (node_template int64 bytes,
 * [(kind, items int32 bytes)]), numbered in the order the nodes close. */
static PyObject *intern_templates(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *objects[4], *result = NULL;
    Py_buffer views[4];
    int held = 0;
    if (!PyArg_ParseTuple(args, "OOOO", &objects[0], &objects[1], &objects[2], &objects[3])) return NULL;
    if (PyObject_GetBuffer(objects[0], &views[0], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    held = 1;
    if (views[0].itemsize != 4 || (views[0].format && strcmp(views[0].format, "i") && strcmp(views[0].format, "l"))) {
        PyErr_SetString(PyExc_TypeError, "expected an int32 array of items");
        goto done;
    }
    for (; held < 4; held++)
        if (get_int64s(objects[held], &views[held]) < 0) goto done;
    size_t n_lines = (size_t)views[0].len / 4, n_nodes = (size_t)views[3].len / 8;
    if (views[1].len / 8 != (Py_ssize_t)n_lines) {
        failed(SK_INVALID, "items and owners do not line up");
        goto done;
    }
    int64_t *node_template = PyMem_RawMalloc(n_nodes * 8 + 1);
    if (!node_template) {
        PyErr_NoMemory();
        goto done;
    }
    int32_t *grouped = NULL;
    sk_interner distinct;
    const char *why = NULL;
    int status = sk_intern_templates(views[0].buf, n_lines, views[1].buf, views[2].buf, (size_t)views[2].len / 8,
                                     views[3].buf, n_nodes, node_template, &grouped, &distinct, &why);
    if (status < 0) {
        failed(status, why);
    } else {
        PyObject *list = PyList_New((Py_ssize_t)distinct.count);
        for (size_t i = 0; list && i < distinct.count; i++) {
            const int32_t *start = (const int32_t *)(distinct.base + distinct.start[i]);
            PyObject *entry = Py_BuildValue("(iy#)", (int)start[0], (const char *)(start + 1),
                                            (Py_ssize_t)distinct.length[i] - 4);
            if (!entry) Py_CLEAR(list);
            else PyList_SET_ITEM(list, (Py_ssize_t)i, entry);
        }
        if (list) result = Py_BuildValue("(y#N)", (const char *)node_template, (Py_ssize_t)n_nodes * 8, list);
        sk_interner_free(&distinct);
        sk_free(grouped);
    }
    PyMem_RawFree(node_template);
done:
    for (int k = 0; k < held; k++) PyBuffer_Release(&views[k]);
    return result;
}

/* ---- render ------------------------------------------------------------------------------- */

/* The UTF-8 of every item of a list of str or bytes, borrowed from the items. */
static int texts_of(PyObject *list, sk_texts *out, const char *what) {
    out->text = NULL;
    out->length = NULL;
    out->count = 0;
    if (!PyList_Check(list)) {
        PyErr_Format(PyExc_TypeError, "%s must be a list", what);
        return -1;
    }
    size_t count = (size_t)PyList_GET_SIZE(list);
    out->text = PyMem_RawMalloc(count * sizeof(char *) + 1);
    out->length = PyMem_RawMalloc(count * sizeof(size_t) + 1);
    if (!out->text || !out->length) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(list, (Py_ssize_t)i);
        Py_ssize_t n;
        if (PyBytes_Check(item)) {
            out->text[i] = PyBytes_AS_STRING(item);
            n = PyBytes_GET_SIZE(item);
        } else if (PyUnicode_Check(item)) {
            out->text[i] = PyUnicode_AsUTF8AndSize(item, &n);
            if (!out->text[i]) return -1;
        } else {
            PyErr_Format(PyExc_TypeError, "%s must hold str or bytes", what);
            return -1;
        }
        out->length[i] = (size_t)n;
        out->count = i + 1;
    }
    out->count = count;
    return 0;
}

static void texts_free(sk_texts *t) {
    PyMem_RawFree(t->text);
    PyMem_RawFree(t->length);
}

typedef struct {
    Py_buffer numbers, codes, override_at;
    int has_numbers, has_codes, has_overrides;
} column_views;

/* A column's numbers or override places: an array of 8-byte values, or the raw bytearray
 * that columns() makes. */
static int get_column_array(PyObject *object, Py_buffer *view, int floats) {
    if (!PyByteArray_CheckExact(object))
        return floats ? get_8byte(object, view, "d", NULL, "float64") : get_int64s(object, view);
    if (PyObject_GetBuffer(object, view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (view->len % 8 == 0) return 0;
    PyBuffer_Release(view);
    PyErr_SetString(PyExc_TypeError, "expected a whole number of 8-byte values");
    return -1;
}

/* One column spec (type, width, data, codes, strings, override occurrences, override texts). */
static int column_of(PyObject *spec, sk_column *c, column_views *v) {
    PyObject *data, *codes, *strings, *override_at, *override_text;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(spec, "inOOOOO", &c->type, &width, &data, &codes, &strings, &override_at, &override_text))
        return -1;
    if (width < 1) {
        failed(SK_INVALID, "a column's width must be at least 1");
        return -1;
    }
    c->width = (size_t)width;
    if (c->type == SK_STRINGS) {
        if (texts_of(strings, &c->strings, "a string column") < 0) return -1;
        c->occurrences = c->strings.count;
    } else if (c->type == SK_INTS || c->type == SK_FLOATS) {
        if (get_column_array(data, &v->numbers, c->type == SK_FLOATS) < 0) return -1;
        v->has_numbers = 1;
        c->numbers = v->numbers.buf;
        c->occurrences = (size_t)v->numbers.len / 8 / c->width;
        if (c->type == SK_FLOATS) {
            if (PyObject_GetBuffer(codes, &v->codes, PyBUF_C_CONTIGUOUS) < 0) return -1;
            v->has_codes = 1;
            c->codes = v->codes.buf;
        }
    } else {
        failed(SK_INVALID, "a column of an unknown type");
        return -1;
    }
    if (get_column_array(override_at, &v->override_at, 0) < 0) return -1;
    v->has_overrides = 1;
    c->override_at = v->override_at.buf;
    if (texts_of(override_text, &c->override_text, "override texts") < 0) return -1;
    if ((size_t)v->override_at.len / 8 != c->override_text.count) {
        failed(SK_INVALID, "override occurrences and texts differ in number");
        return -1;
    }
    const char *why = NULL;
    int status = sk_column_check(c, v->has_numbers ? (size_t)v->numbers.len : 0,
                                 v->has_codes ? (size_t)v->codes.len : 0, &why);
    if (status < 0) {
        failed(status, why);
        return -1;
    }
    return 0;
}

/* render(node_template, template_kinds, template_items, entry_column, entry_prefix, columns,
 *        lines, final_newline) -> bytes: the story text as iter_decoded_lines gives it. */
static PyObject *render(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *node_template_object, *kinds, *items, *entry_column_object, *entry_prefix, *columns, *lines;
    int final_newline;
    if (!PyArg_ParseTuple(args, "OOO!OOO!Op", &node_template_object, &kinds, &PyList_Type, &items,
                          &entry_column_object, &entry_prefix, &PyList_Type, &columns, &lines, &final_newline))
        return NULL;
    PyObject *result = NULL;
    Py_buffer node_template, entry_column;
    int have_node_template = 0, have_entry_column = 0;
    sk_layout L;
    memset(&L, 0, sizeof L);
    size_t n_columns = (size_t)PyList_GET_SIZE(columns), n_templates = (size_t)PyList_GET_SIZE(items);
    column_views *views = PyMem_RawCalloc(n_columns + 1, sizeof(column_views));
    L.columns = PyMem_RawCalloc(n_columns + 1, sizeof(sk_column));
    const int32_t **item_arrays = PyMem_RawCalloc(n_templates + 1, sizeof(int32_t *));
    size_t *n_items = PyMem_RawCalloc(n_templates + 1, sizeof(size_t));
    sk_buffer out = {0};
    if (!views || !L.columns || !item_arrays || !n_items) {
        PyErr_NoMemory();
        goto done;
    }
    if (get_int64s(node_template_object, &node_template) < 0) goto done;
    have_node_template = 1;
    if (get_int64s(entry_column_object, &entry_column) < 0) goto done;
    have_entry_column = 1;
    if (texts_of(kinds, &L.kinds, "template kinds") < 0 || texts_of(entry_prefix, &L.entry_prefix, "prefixes") < 0 ||
        texts_of(lines, &L.lines, "lines") < 0)
        goto done;
    if (L.kinds.count != n_templates || L.entry_prefix.count != (size_t)entry_column.len / 8) {
        failed(SK_INVALID, "templates or entries differ in number from their kinds or prefixes");
        goto done;
    }
    for (size_t t = 0; t < n_templates; t++) {
        PyObject *item = PyList_GET_ITEM(items, (Py_ssize_t)t);
        if (!PyBytes_Check(item) || PyBytes_GET_SIZE(item) % 4) {
            PyErr_SetString(PyExc_TypeError, "template items must be int32 bytes");
            goto done;
        }
        item_arrays[t] = (const int32_t *)PyBytes_AS_STRING(item);
        n_items[t] = (size_t)PyBytes_GET_SIZE(item) / 4;
    }
    for (size_t i = 0; i < n_columns; i++)
        if (column_of(PyList_GET_ITEM(columns, (Py_ssize_t)i), &L.columns[i], &views[i]) < 0) goto done;
    L.node_template = node_template.buf;
    L.n_nodes = (size_t)node_template.len / 8;
    L.items = item_arrays;
    L.n_items = n_items;
    L.entry_column = entry_column.buf;
    L.n_entries = (size_t)entry_column.len / 8;
    L.n_columns = n_columns;
    L.final_newline = final_newline;
    const char *why = NULL;
    int status;
    /* Plain C on buffers this call holds: another thread decodes the next record meanwhile. */
    Py_BEGIN_ALLOW_THREADS
    status = sk_render(&L, &out, &why);
    Py_END_ALLOW_THREADS
    if (status < 0) failed(status, why);
    else result = PyBytes_FromStringAndSize(out.data, (Py_ssize_t)out.size);
done:
    sk_buffer_free(&out);
    for (size_t i = 0; views && L.columns && i < n_columns; i++) {
        if (views[i].has_numbers) PyBuffer_Release(&views[i].numbers);
        if (views[i].has_codes) PyBuffer_Release(&views[i].codes);
        if (views[i].has_overrides) PyBuffer_Release(&views[i].override_at);
        texts_free(&L.columns[i].strings);
        texts_free(&L.columns[i].override_text);
    }
    texts_free(&L.kinds);
    texts_free(&L.entry_prefix);
    texts_free(&L.lines);
    if (have_entry_column) PyBuffer_Release(&entry_column);
    if (have_node_template) PyBuffer_Release(&node_template);
    PyMem_RawFree(views);
    PyMem_RawFree(L.columns);
    PyMem_RawFree(item_arrays);
    PyMem_RawFree(n_items);
    return result;
}

/* ---- columns read back ---------------------------------------------------------------------- */
/* Each check below answers 1 (valid, as validate.py would find it) or 0 (declined: the
 * reference reads the column, and takes it or refuses it as it always has). */
static int is_text(PyObject *object, const char *ascii) {
    return PyUnicode_CheckExact(object) && PyUnicode_CompareWithASCIIString(object, ascii) == 0;
}

/* A list or tuple (a record's documents hold no other sequences) and its items, borrowed. */
static int items_of(PyObject *object, Py_ssize_t *count, PyObject ***items) {
    if (!PyTuple_CheckExact(object) && !PyList_CheckExact(object)) return 0;
    *count = PySequence_Fast_GET_SIZE(object);
    *items = PySequence_Fast_ITEMS(object);
    return 1;
}

/* An int (not a bool) within int64. */
static int int64_of(PyObject *object, int64_t *out) {
    if (!PyLong_CheckExact(object)) return 0;
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(object, &overflow);
    if (overflow || (value == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    *out = value;
    return 1;
}

/* validate.texts: every item a str without a newline. */
static int one_line_texts(PyObject *const *items, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyUnicode_CheckExact(items[i])) return 0;
        Py_ssize_t at = PyUnicode_FindChar(items[i], '\n', 0, PyUnicode_GET_LENGTH(items[i]), 1);
        if (at != -1) {
            PyErr_Clear();
            return 0;
        }
    }
    return 1;
}

/* validate.packed_ints of `count` values; with `out`, intpack.unpack_ints into it. */
static int packed_ints_of(PyObject *packed, Py_ssize_t count, int64_t *out) {
    Py_ssize_t n;
    PyObject **part;
    int64_t value, found;
    if (!items_of(packed, &n, &part) || n == 0) return 0;
    if (is_text(part[0], "c") && n == 3) {
        if (!int64_of(part[1], &value) || !int64_of(part[2], &found) || found != count) return 0;
        for (Py_ssize_t k = 0; out && k < count; k++) out[k] = value;
        return 1;
    }
    int deltas = is_text(part[0], "d");
    if ((!deltas && !is_text(part[0], "r")) || n != 4) return 0;
    size_t type = 0;
    while (type < SK_N_INT_TYPES && !is_text(part[1], SK_INT_TYPES[type].name)) type++;
    if (type == SK_N_INT_TYPES || !int64_of(part[2], &found) || found != count || !PyBytes_CheckExact(part[3]) ||
        PyBytes_GET_SIZE(part[3]) != count * (Py_ssize_t)SK_INT_TYPES[type].size)
        return 0;
    if (out)
        sk_unpack_ints((const unsigned char *)PyBytes_AS_STRING(part[3]), (size_t)count, SK_INT_TYPES[type].size,
                       SK_INT_TYPES[type].is_signed, deltas, out);
    return 1;
}

/* validate.packed_floats of `count` values; with `out`, intpack.unpack_floats into it. */
static int packed_floats_of(PyObject *packed, Py_ssize_t count, unsigned char *out) {
    Py_ssize_t n;
    PyObject **part;
    int64_t found;
    if (!items_of(packed, &n, &part) || n == 0) return 0;
    if (is_text(part[0], "c") && n == 3) {
        if (!PyBytes_CheckExact(part[1]) || PyBytes_GET_SIZE(part[1]) != 8 || !int64_of(part[2], &found) ||
            found != count)
            return 0;
        for (Py_ssize_t k = 0; out && k < count; k++) memcpy(out + 8 * k, PyBytes_AS_STRING(part[1]), 8);
        return 1;
    }
    if (!is_text(part[0], "r") || n != 2 || !PyBytes_CheckExact(part[1]) || PyBytes_GET_SIZE(part[1]) != 8 * count)
        return 0;
    const char *why = NULL;
    return !out || sk_unshuffle((const unsigned char *)PyBytes_AS_STRING(part[1]), (size_t)(8 * count), 8, out,
                                &why) == SK_OK;
}

/* validate._overrides: rising places among `occurrences` values, each with a one-line text. */
static int overrides_of(PyObject *overrides, Py_ssize_t occurrences, Py_ssize_t *count, PyObject ***at,
                        PyObject ***texts) {
    Py_ssize_t parts, n_texts;
    PyObject **pair;
    if (!items_of(overrides, &parts, &pair) || parts != 2 || !items_of(pair[0], count, at) ||
        !items_of(pair[1], &n_texts, texts) || n_texts != *count)
        return 0;
    if (*count && !one_line_texts(*texts, *count)) return 0;
    int64_t previous = -1, place;
    for (Py_ssize_t k = 0; k < *count; k++) {
        if (!int64_of((*at)[k], &place) || place <= previous) return 0;
        previous = place;
    }
    return previous < occurrences;
}

/* The new list of `count` borrowed items. */
static PyObject *list_of(PyObject *const *items, Py_ssize_t count) {
    PyObject *list = PyList_New(count);
    for (Py_ssize_t k = 0; list && k < count; k++) PyList_SET_ITEM(list, k, Py_NewRef(items[k]));
    return list;
}

/* The override places as int64 bytes. */
static PyObject *places_of(PyObject *const *at, Py_ssize_t count) {
    PyObject *out = PyByteArray_FromStringAndSize(NULL, 8 * count);
    for (Py_ssize_t k = 0; out && k < count; k++) {
        int64_t place = 0;
        int64_of(at[k], &place); /* overrides_of took every one */
        memcpy(PyByteArray_AS_STRING(out) + 8 * k, &place, 8);
    }
    return out;
}

/* The numbers of a typed column in token order (values: 8 bytes each) and, for floats,
 * their format codes; 0 when a code lies outside 0..255 (the reference refuses it).  With
 * `predicted` (format 4) a stored code is the code minus the fixed-point code the token's value
 * predicts, minus its decimal exponent here (storage f or i), or an exponent-style code plus
 * SK_EXPONENT_STORED (precision.codes_from_stored). */
static int numbers_of(PyObject *stored, int stored_floats, PyObject *packed_codes, size_t tokens, size_t width,
                      int floats, int predicted, unsigned char *scratch, unsigned char *values, unsigned char *codes) {
    if (stored_floats) packed_floats_of(stored, (Py_ssize_t)tokens, scratch);
    else packed_ints_of(stored, (Py_ssize_t)tokens, (int64_t *)scratch);
    sk_to_tokens(scratch, tokens, width, values);
    if (floats && !stored_floats) {
        for (size_t k = 0; k < tokens; k++) {
            int64_t whole;
            memcpy(&whole, values + 8 * k, 8);
            double value = (double)whole;
            memcpy(values + 8 * k, &value, 8);
        }
    }
    if (!floats) return 1;
    packed_ints_of(packed_codes, (Py_ssize_t)tokens, (int64_t *)scratch);
    /* stored component by component: code k = c * occurrences + o is that of token o * width + c */
    size_t occurrences = tokens / width, k = 0;
    for (size_t c = 0; c < width; c++) {
        for (size_t o = 0; o < occurrences; o++, k++) {
            int64_t code;
            memcpy(&code, scratch + 8 * k, 8);
            if (predicted) {
                double value;
                memcpy(&value, values + 8 * (o * width + c), 8);
                if (!sk_code_from_stored(code, value, stored_floats ? 'f' : 'i', &code)) return 0;
            }
            if (code < 0 || code > 255) return 0;
            scratch[k] = (unsigned char)code; /* byte k is written after int64 k is read */
        }
    }
    const char *why = NULL;
    return sk_unshuffle(scratch, tokens, width, codes, &why) == SK_OK; /* one byte a code: a byte shuffle undone */
}

/* One packed column of `occurrences` values: what render() takes for it, as validate.column,
 * Column.unpack and Column.render_spec make it; None when the reference must read it (a
 * column predicted from another, held in the hot section, of powers of two, or invalid). */
static PyObject *column_spec(PyObject *packed, Py_ssize_t occurrences, int64_t max_tokens, int predicted) {
    Py_ssize_t n, n_storage, n_at = 0;
    PyObject **part, **storage, **at = NULL, **texts = NULL;
    int64_t width;
    if (!items_of(packed, &n, &part) || n < 7) Py_RETURN_NONE;
    int type = is_text(part[3], "s") ? SK_STRINGS : is_text(part[3], "i") ? SK_INTS : is_text(part[3], "f") ? SK_FLOATS : -1;
    if (type < 0 || n != 7 + type || !PyUnicode_CheckExact(part[0]) || !PyUnicode_CheckExact(part[1]) ||
        !int64_of(part[2], &width) || width < 1 || width > max_tokens || occurrences < 0 ||
        occurrences > max_tokens / width)
        Py_RETURN_NONE;
    if (type == SK_STRINGS) {
        Py_ssize_t count;
        PyObject **strings;
        if (!items_of(part[4], &count, &strings) || count != occurrences || !one_line_texts(strings, count) ||
            part[5] != Py_None)
            Py_RETURN_NONE;
        return Py_BuildValue("(inOONNN)", type, (Py_ssize_t)width, Py_None, Py_None, list_of(strings, count),
                             PyByteArray_FromStringAndSize(NULL, 0), PyList_New(0));
    }
    Py_ssize_t tokens = occurrences * (Py_ssize_t)width;
    int floats = type == SK_FLOATS;
    if (!items_of(part[4], &n_storage, &storage) || n_storage != 2) Py_RETURN_NONE;
    int stored_floats = floats && is_text(storage[0], "f");
    /* Every part is checked before anything is allocated (a forged count claims any size). */
    if ((!stored_floats && !is_text(storage[0], "i")) ||
        !(stored_floats ? packed_floats_of(storage[1], tokens, NULL) : packed_ints_of(storage[1], tokens, NULL)) ||
        (floats && !packed_ints_of(part[5], tokens, NULL)) || !overrides_of(part[n - 3], occurrences, &n_at, &at, &texts) ||
        part[n - 2] != Py_None)
        Py_RETURN_NONE;
    PyObject *values = PyByteArray_FromStringAndSize(NULL, 8 * tokens);
    PyObject *codes = floats ? PyByteArray_FromStringAndSize(NULL, tokens) : Py_NewRef(Py_None);
    unsigned char *scratch = PyMem_RawMalloc((size_t)(8 * tokens) + 1);
    PyObject *result = NULL;
    if (!values || !codes || !scratch) {
        if (!scratch) PyErr_NoMemory();
    } else if (!numbers_of(storage[1], stored_floats, floats ? part[5] : NULL, (size_t)tokens, (size_t)width, floats,
                           predicted, scratch, (unsigned char *)PyByteArray_AS_STRING(values),
                           floats ? (unsigned char *)PyByteArray_AS_STRING(codes) : NULL)) {
        result = Py_NewRef(Py_None);
    } else {
        result = Py_BuildValue("(inOOONN)", type, (Py_ssize_t)width, values, codes, Py_None, places_of(at, n_at),
                               list_of(texts, n_at));
    }
    PyMem_RawFree(scratch);
    Py_XDECREF(values);
    Py_XDECREF(codes);
    return result;
}

/* columns(packed columns, occurrences, max_tokens, predicted codes) -> [render() spec | None, one per
 * column]; None when the two lists are not of one length.  max_tokens is validate.MAX_TOKENS; predicted
 * codes: format 4's (numbers_of). */
static PyObject *columns(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *packed, *occurrences, **items;
    Py_ssize_t count;
    long long max_tokens;
    int predicted;
    if (!PyArg_ParseTuple(args, "OO!Lp", &packed, &PyList_Type, &occurrences, &max_tokens, &predicted)) return NULL;
    if (!items_of(packed, &count, &items) || PyList_GET_SIZE(occurrences) != count || max_tokens < 1) Py_RETURN_NONE;
    PyObject *result = PyList_New(count);
    for (Py_ssize_t i = 0; result && i < count; i++) {
        int64_t uses;
        PyObject *spec = int64_of(PyList_GET_ITEM(occurrences, i), &uses)
                             ? column_spec(items[i], (Py_ssize_t)uses, max_tokens, predicted)
                             : Py_NewRef(Py_None);
        if (!spec) Py_CLEAR(result);
        else PyList_SET_ITEM(result, i, spec);
    }
    return result;
}

/* format_floats(values, codes) -> list[str], as numbers.format_floats_reference. */
static PyObject *format_floats(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer values, codes;
    if (!PyArg_ParseTuple(args, "y*y*", &values, &codes)) return NULL;
    PyObject *list = NULL;
    if (values.len != codes.len * 8) {
        failed(SK_INVALID, "one code per value");
        goto done;
    }
    Py_ssize_t n = codes.len;
    list = PyList_New(n);
    char buffer[SK_NUMBER_MAX];
    for (Py_ssize_t i = 0; list && i < n; i++) {
        double x;
        memcpy(&x, (const char *)values.buf + 8 * i, 8);
        int length = sk_format_number(x, ((const unsigned char *)codes.buf)[i], buffer);
        PyObject *text = length < 0 ? NULL : PyUnicode_FromStringAndSize(buffer, length);
        if (!text) {
            if (length < 0) failed(SK_INVALID, "a number cannot be printed with its format code");
            Py_CLEAR(list);
        } else {
            PyList_SET_ITEM(list, i, text);
        }
    }
done:
    PyBuffer_Release(&values);
    PyBuffer_Release(&codes);
    return list;
}

/* unshuffle(data, itemsize) -> bytearray: intpack's byte shuffle undone. */
static PyObject *unshuffle(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer data;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "y*n", &data, &width)) return NULL;
    PyObject *result = NULL;
    const char *why = NULL;
    if (width < 1 || data.len % width) {
        failed(SK_INVALID, "shuffled data is not a whole number of values");
    } else if ((result = PyByteArray_FromStringAndSize(NULL, data.len))) {
        int status = sk_unshuffle(data.buf, (size_t)data.len, (size_t)width,
                                  (unsigned char *)PyByteArray_AS_STRING(result), &why);
        if (status < 0) {
            Py_CLEAR(result);
            failed(status, why);
        }
    }
    PyBuffer_Release(&data);
    return result;
}

/* pack_ints(int64 array) -> list, as intpack.pack_ints_reference: ["c", value, count], or
 * [mode, dtype, count, shuffled bytes]. */
static PyObject *pack_ints(PyObject *Py_UNUSED(self), PyObject *arg) {
    Py_buffer view;
    if (get_int64s(arg, &view) < 0) return NULL;
    size_t count = (size_t)view.len / 8;
    sk_int_plan plan;
    sk_plan_ints(view.buf, count, &plan);
    PyObject *result = NULL;
    if (plan.mode == 'c') {
        result = Py_BuildValue("[sLn]", "c", (long long)plan.constant, (Py_ssize_t)count);
    } else {
        PyObject *data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(count * SK_INT_TYPES[plan.type].size));
        if (data) {
            sk_pack_ints(view.buf, count, &plan, (unsigned char *)PyBytes_AS_STRING(data));
            result = Py_BuildValue("[ssnN]", plan.mode == 'd' ? "d" : "r", SK_INT_TYPES[plan.type].name,
                                   (Py_ssize_t)count, data);
        }
    }
    PyBuffer_Release(&view);
    return result;
}

/* pack_floats(float64 array) -> list, as intpack.pack_floats_reference: ["c", 8 bytes, count]
 * when every value has the same bits, else ["r", shuffled bytes]. */
static PyObject *pack_floats(PyObject *Py_UNUSED(self), PyObject *arg) {
    Py_buffer view;
    if (get_8byte(arg, &view, "d", NULL, "float64") < 0) return NULL;
    size_t count = (size_t)view.len / 8;
    const unsigned char *bytes = view.buf;
    size_t same = count ? 1 : 0;
    while (same < count && !memcmp(bytes + 8 * same, bytes, 8)) same++;
    PyObject *result = NULL;
    if (count && same == count) {
        result = Py_BuildValue("[sy#n]", "c", (const char *)bytes, (Py_ssize_t)8, (Py_ssize_t)count);
    } else {
        PyObject *data = PyBytes_FromStringAndSize(NULL, view.len);
        if (data) {
            sk_shuffle(bytes, count, 8, (unsigned char *)PyBytes_AS_STRING(data));
            result = Py_BuildValue("[sN]", "r", data);
        }
    }
    PyBuffer_Release(&view);
    return result;
}

/* What ints_of_floats gives for each value of a float64 array. */
enum { WHOLE, POWERS_OF_TWO, DECIMAL_EXPONENTS };

/* sk_whole, sk_powers_of_two or sk_decimal_exponent on a float64 array: the int64s as a bytearray, or
 * None when the first two find a value that is not of their kind. */
static PyObject *ints_of_floats(PyObject *arg, int what, long long bias) {
    Py_buffer view;
    if (get_8byte(arg, &view, "d", NULL, "float64") < 0) return NULL;
    size_t count = (size_t)view.len / 8;
    PyObject *out = PyByteArray_FromStringAndSize(NULL, view.len);
    if (out) {
        int64_t *ints = (int64_t *)PyByteArray_AS_STRING(out);
        const double *values = view.buf;
        if (what == DECIMAL_EXPONENTS) {
            for (size_t k = 0; k < count; k++) ints[k] = sk_decimal_exponent(values[k]);
        } else if (!(what == POWERS_OF_TWO ? sk_powers_of_two(values, count, bias, ints)
                                           : sk_whole(values, count, ints))) {
            Py_SETREF(out, Py_NewRef(Py_None));
        }
    }
    PyBuffer_Release(&view);
    return out;
}

/* whole(float64 array) -> bytearray of int64 | None, as numbers.as_whole. */
static PyObject *whole(PyObject *Py_UNUSED(self), PyObject *arg) { return ints_of_floats(arg, WHOLE, 0); }

/* decimal_exponents(float64 array) -> bytearray of int64, as precision.decimal_exponents_reference. */
static PyObject *decimal_exponents(PyObject *Py_UNUSED(self), PyObject *arg) {
    return ints_of_floats(arg, DECIMAL_EXPONENTS, 0);
}

/* A column's storage as format 4's predictions know it: one of f, i, h, p, d; 0 for any other text. */
static char storage_of(PyObject *storage) {
    const char *known = "fihpd";
    for (const char *at = known; *at; at++) {
        char name[2] = {*at, 0};
        if (is_text(storage, name)) return *at;
    }
    return 0;
}

/* stored_codes(codes: uint8, values: float64, storage) -> bytearray of int64, as
 * precision.stored_codes_reference (one value a code). */
static PyObject *stored_codes(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer codes, values;
    PyObject *storage;
    if (!PyArg_ParseTuple(args, "y*y*O", &codes, &values, &storage)) return NULL;
    PyObject *out = NULL;
    char kind = storage_of(storage);
    if (!kind || values.len != codes.len * 8) {
        PyErr_SetString(PyExc_ValueError, "expected a storage f, i, h, p or d and one float64 a code");
    } else if ((out = PyByteArray_FromStringAndSize(NULL, values.len))) {
        int64_t *stored = (int64_t *)PyByteArray_AS_STRING(out);
        const unsigned char *code = codes.buf;
        for (Py_ssize_t k = 0; k < codes.len; k++) {
            double x;
            memcpy(&x, (const char *)values.buf + 8 * k, 8);
            stored[k] = sk_stored_code(code[k], x, kind);
        }
    }
    PyBuffer_Release(&codes);
    PyBuffer_Release(&values);
    return out;
}

/* codes_from_stored(stored: int64, values: float64 | None, storage) -> bytearray of int64 | None, as
 * precision.codes_from_stored (values None for storage d); None when a stored number gives no code. */
static PyObject *codes_from_stored(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *stored_object, *values_object, *storage;
    if (!PyArg_ParseTuple(args, "OOO", &stored_object, &values_object, &storage)) return NULL;
    char kind = storage_of(storage);
    if (!kind || (values_object == Py_None && kind != 'd')) {
        PyErr_SetString(PyExc_ValueError, "expected a storage f, i, h, p or d, and values unless it is d");
        return NULL;
    }
    Py_buffer stored, values;
    if (get_int64s(stored_object, &stored) < 0) return NULL;
    int has_values = values_object != Py_None;
    if (has_values && get_float64s(values_object, &values, stored.len / 8) < 0) {
        PyBuffer_Release(&stored);
        return NULL;
    }
    PyObject *out = PyByteArray_FromStringAndSize(NULL, stored.len);
    if (out) {
        int64_t *codes = (int64_t *)PyByteArray_AS_STRING(out);
        const int64_t *numbers = stored.buf;
        for (Py_ssize_t k = 0; k < stored.len / 8; k++) {
            double x = 0;
            if (has_values) memcpy(&x, (const char *)values.buf + 8 * k, 8);
            if (!sk_code_from_stored(numbers[k], x, kind, &codes[k])) {
                Py_SETREF(out, Py_NewRef(Py_None));
                break;
            }
        }
    }
    PyBuffer_Release(&stored);
    if (has_values) PyBuffer_Release(&values);
    return out;
}

/* powers_of_two(float64 array, bias) -> bytearray of int64 | None, as numbers._powers_of_two. */
static PyObject *powers_of_two(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *values;
    long long bias;
    if (!PyArg_ParseTuple(args, "OL", &values, &bias)) return NULL;
    if (bias < 0 || bias > (1LL << 40)) return failed(SK_INVALID, "the exponent bias is out of range");
    return ints_of_floats(values, POWERS_OF_TWO, bias);
}

/* stars(parent, index, name or None, mass, pos, vel) -> bytearray of PARTICLE_DTYPE records;
 * pos and vel component by component (all x, all y, all z). */
static PyObject *stars(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *objects[6], *result = NULL;
    if (!PyArg_ParseTuple(args, "OOOOOO", &objects[0], &objects[1], &objects[2], &objects[3], &objects[4],
                          &objects[5]))
        return NULL;
    Py_buffer parent, views[5];
    int held[5] = {0};
    if (get_int64s(objects[0], &parent) < 0) return NULL;
    Py_ssize_t n = parent.len / 8, counts[5] = {n, n, n, 3 * n, 3 * n};
    for (int k = 0; k < 5; k++) {
        if (k == 1 && objects[2] == Py_None) continue;
        if (get_float64s(objects[k + 1], &views[k], counts[k]) < 0) goto done;
        held[k] = 1;
    }
    unsigned char *out = NULL;
    size_t count = 0;
    const char *why = NULL;
    int status = sk_stars(parent.buf, views[0].buf, held[1] ? views[1].buf : NULL, views[2].buf, views[3].buf,
                          views[4].buf, (size_t)n, &out, &count, &why);
    if (status < 0) failed(status, why);
    else result = PyByteArray_FromStringAndSize((const char *)out, (Py_ssize_t)count * 64);
    sk_free(out);
done:
    for (int k = 0; k < 5; k++)
        if (held[k]) PyBuffer_Release(&views[k]);
    PyBuffer_Release(&parent);
    return result;
}

static PyMethodDef methods[] = {
    {"split_roots", split_roots, METH_VARARGS, "Offsets where whole, well-formed root stories end."},
    {"scan", scan, METH_VARARGS, "Lines, nesting and entry candidates of one root story's UTF-8 bytes."},
    {"type_column", type_column, METH_VARARGS, "Type one value column, with the print-back proof."},
    {"intern_templates", intern_templates, METH_VARARGS, "Each node's template, interned in closing order."},
    {"render", render, METH_VARARGS, "Print a record's layout back to its exact UTF-8 text."},
    {"format_floats", format_floats, METH_VARARGS, "Print floats with their format codes."},
    {"unshuffle", unshuffle, METH_VARARGS, "Undo intpack's byte shuffle."},
    {"stars", stars, METH_VARARGS, "Leaf stars, absolute and sorted by id, from star rows."},
    {"columns", columns, METH_VARARGS, "Check and unpack a record's value columns, as render() takes them."},
    {"pack_ints", pack_ints, METH_O, "Pack an int64 array as intpack does."},
    {"pack_floats", pack_floats, METH_O, "Pack a float64 array bit-exactly as intpack does."},
    {"whole", whole, METH_O, "A float64 array's whole numbers as int64, or None."},
    {"powers_of_two", powers_of_two, METH_VARARGS, "A float64 array's powers of two as biased exponents, or None."},
    {"decimal_exponents", decimal_exponents, METH_O, "A float64 array's decimal exponents as int64."},
    {"stored_codes", stored_codes, METH_VARARGS, "Format codes as format 4 stores them."},
    {"codes_from_stored", codes_from_stored, METH_VARARGS, "Format 4's stored format codes read back, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernel", "The codec's compiled hot loops.", -1,
                                    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernel(void) {
    sk_malloc = PyMem_RawMalloc;
    sk_calloc = PyMem_RawCalloc;
    sk_realloc = PyMem_RawRealloc;
    sk_free = PyMem_RawFree;
    if (sk_numbers_init() < 0) return PyErr_NoMemory();
    /* the interner's hash key: fresh for every process, so no one can choose colliding keys */
    PyObject *os = PyImport_ImportModule("os");
    PyObject *key = os ? PyObject_CallMethod(os, "urandom", "i", 16) : NULL;
    Py_XDECREF(os);
    if (!key) return NULL;
    if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) != 16) {
        Py_DECREF(key);
        PyErr_SetString(PyExc_RuntimeError, "os.urandom gave no 16-byte key");
        return NULL;
    }
    sk_hash_seed((const uint8_t *)PyBytes_AS_STRING(key));
    Py_DECREF(key);
    return PyModule_Create(&module);
}
