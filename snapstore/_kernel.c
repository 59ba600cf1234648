/* snapstore's hot loops in C: cutting a stream into root stories, scanning a story's
 * bytes, typing its value columns with a proof that every number prints back exactly,
 * and printing a record back to text.
 *
 * The pure Python/numpy code (story/reader.py, codec/record.py, codec/numbers.py) is
 * the reference: every
 * function here returns exactly what that code computes (a differential test holds
 * them to it), and hands back None or raises ValueError where it does not know the
 * answer, so that the caller takes the reference path.
 *
 * The exactness proof.  Python prints a float x with "%.{d}f" or "%.{d}e" by
 * rounding its exact binary value to the nearest multiple of the last digit's unit
 * 10^E (ties to even).  A canonical token with digits M therefore prints back iff
 * |x - M*10^E| < 10^E / 2.  x = m*2^e and 10^E = 2^E*5^E, so after multiplying by
 * 5^-E (when E < 0) all three quantities are integers times powers of two; aligned
 * on the smallest power they are compared exactly in 128-bit integers.  A tie, or a
 * number too wide for 128 bits, is decided by snprintf instead (glibc rounds
 * exactly, as Python does).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

#define MAX_POW5 54 /* 5^54 < 2^126 */
static u128 POW5[MAX_POW5 + 1];
#define MAX_POW10L 27 /* 10^27 = 2^27 * 5^27 and 5^27 < 2^64: exact in an x87 long double */
static long double POW10L[MAX_POW10L + 1];
static uint64_t POW10[20];

/* ---- growable buffers ---------------------------------------------------------------- */

typedef struct {
    char *data;
    Py_ssize_t size, capacity;
} Buffer;

static int buffer_reserve(Buffer *b, Py_ssize_t extra) {
    if (b->size + extra <= b->capacity) return 0;
    Py_ssize_t capacity = b->capacity ? b->capacity : 4096;
    while (capacity < b->size + extra) capacity *= 2;
    char *data = PyMem_Realloc(b->data, capacity);
    if (!data) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->capacity = capacity;
    return 0;
}

static int buffer_put(Buffer *b, const void *data, Py_ssize_t n) {
    if (buffer_reserve(b, n) < 0) return -1;
    memcpy(b->data + b->size, data, n);
    b->size += n;
    return 0;
}

static int buffer_int64(Buffer *b, int64_t value) {
    return buffer_put(b, &value, sizeof value);
}

/* A finished buffer of int64 (or other) values as bytes; numpy views it with frombuffer. */
static PyObject *buffer_bytes(Buffer *b) {
    PyObject *out = PyBytes_FromStringAndSize(b->data ? b->data : "", b->size);
    PyMem_Free(b->data);
    b->data = NULL;
    b->size = b->capacity = 0;
    return out;
}

/* ---- interning byte slices in first-appearance order -------------------------------- */

typedef struct {
    const char *base;
    Py_ssize_t *start, *length; /* per distinct slice */
    Py_ssize_t count, slots_mask;
    Py_ssize_t *slots; /* index + 1, 0 for empty */
} Interner;

static int interner_init(Interner *t, const char *base) {
    memset(t, 0, sizeof *t);
    t->base = base;
    t->slots_mask = 255;
    t->slots = PyMem_Calloc(t->slots_mask + 1, sizeof(Py_ssize_t));
    t->start = PyMem_Malloc(128 * sizeof(Py_ssize_t));
    t->length = PyMem_Malloc(128 * sizeof(Py_ssize_t));
    if (!t->slots || !t->start || !t->length) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void interner_free(Interner *t) {
    PyMem_Free(t->slots);
    PyMem_Free(t->start);
    PyMem_Free(t->length);
}

static uint64_t hash_bytes(const char *p, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static int interner_grow(Interner *t) {
    Py_ssize_t mask = t->slots_mask * 2 + 1;
    Py_ssize_t *slots = PyMem_Calloc(mask + 1, sizeof(Py_ssize_t));
    Py_ssize_t *start = PyMem_Realloc(t->start, (mask + 1) * sizeof(Py_ssize_t));
    if (start) t->start = start;
    Py_ssize_t *length = PyMem_Realloc(t->length, (mask + 1) * sizeof(Py_ssize_t));
    if (length) t->length = length;
    if (!slots || !start || !length) {
        PyMem_Free(slots);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < t->count; i++) {
        Py_ssize_t slot = hash_bytes(t->base + t->start[i], t->length[i]) & mask;
        while (slots[slot]) slot = (slot + 1) & mask;
        slots[slot] = i + 1;
    }
    PyMem_Free(t->slots);
    t->slots = slots;
    t->slots_mask = mask;
    return 0;
}

/* The id of base[start:start+n], a new one if it was not seen before; -1 on error. */
static Py_ssize_t intern(Interner *t, Py_ssize_t start, Py_ssize_t n) {
    const char *p = t->base + start;
    Py_ssize_t slot = hash_bytes(p, n) & t->slots_mask;
    while (t->slots[slot]) {
        Py_ssize_t i = t->slots[slot] - 1;
        if (t->length[i] == n && memcmp(t->base + t->start[i], p, n) == 0) return i;
        slot = (slot + 1) & t->slots_mask;
    }
    if (2 * (t->count + 1) > t->slots_mask) {
        if (interner_grow(t) < 0) return -1;
        return intern(t, start, n);
    }
    t->start[t->count] = start;
    t->length[t->count] = n;
    t->slots[slot] = t->count + 1;
    return t->count++;
}

static PyObject *interner_list(Interner *t) {
    PyObject *list = PyList_New(t->count);
    if (!list) return NULL;
    for (Py_ssize_t i = 0; i < t->count; i++) {
        PyObject *item = PyBytes_FromStringAndSize(t->base + t->start[i], t->length[i]);
        if (!item) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

/* ---- cutting a stream into root stories -------------------------------------------- */

static int is_kind_char(Py_UCS1 c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* split_roots(text, start) -> (ends, stop, unfinished) | None.  From `start`, where a
 * root story must open, the end offsets of the whole, well-formed root stories that
 * follow each other; `stop` is where that ends: the end of the text, the opening of
 * a root that the text does not finish (`unfinished` true), or the first line that
 * needs the reader's own checks (a kind outside [A-Za-z0-9_], a mismatch, text
 * between roots).  None for text that is not one byte per character. */
static PyObject *split_roots(PyObject *self, PyObject *args) {
    PyObject *text;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "Un", &text, &start)) return NULL;
    if (PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND) Py_RETURN_NONE;
    const Py_UCS1 *data = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    PyObject *ends = PyList_New(0);
    if (!ends) return NULL;
    /* the open kinds of the current root, as (offset, length) into data */
    Py_ssize_t stack_kind[256], stack_length[256];
    int depth = 0, unfinished = 0;
    Py_ssize_t root_start = start, line = start;
    while (line < size) {
        const Py_UCS1 *newline = memchr(data + line, '\n', size - line);
        Py_ssize_t end = newline ? newline - data : size;
        Py_UCS1 first = data[line];
        if (first == '(') {
            Py_ssize_t length = end - line - 1;
            if (length == 0 || depth == 256) break;
            for (Py_ssize_t i = line + 1; i < end; i++)
                if (!is_kind_char(data[i])) goto irregular;
            if (depth == 0) root_start = line;
            stack_kind[depth] = line + 1;
            stack_length[depth++] = length;
        } else if (first == ')') {
            Py_ssize_t length = end - line - 1;
            if (!depth || stack_length[depth - 1] != length ||
                memcmp(data + stack_kind[depth - 1], data + line + 1, length) != 0)
                break;
            if (--depth == 0) {
                Py_ssize_t root_end = newline ? end + 1 : end;
                PyObject *offset = PyLong_FromSsize_t(root_end);
                if (!offset || PyList_Append(ends, offset) < 0) {
                    Py_XDECREF(offset);
                    Py_DECREF(ends);
                    return NULL;
                }
                Py_DECREF(offset);
                root_start = root_end;
            }
        } else if (!depth) {
            break; /* text between roots: the reader says what is wrong */
        }
        if (!newline) {
            line = size;
            break;
        }
        line = end + 1;
    }
    if (line >= size && depth) unfinished = 1;
irregular:
    return Py_BuildValue("(Nni)", ends, root_start, unfinished);
}

/* ---- scan: lines, nesting and entries of one root story ------------------------------ */

enum { L_START, L_END, L_OWNER, OPENS, CLOSES, CLOSED, N_DEPTH, N_KIND, E_LINE, E_PREFIX, E_START, E_END, E_WIDTH,
       N_ARRAYS };

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    const char *body = view.buf;
    Py_ssize_t size = view.len;
    Buffer arrays[N_ARRAYS];
    Buffer content = {0};
    memset(arrays, 0, sizeof arrays);
    Interner kinds, prefixes;
    int kinds_ready = 0, prefixes_ready = 0;
    int64_t *stack = NULL;
    Py_ssize_t depth = 0, stack_capacity = 64, nodes = 0, line = 0;
    PyObject *result = NULL;

    if (interner_init(&kinds, body) < 0) goto done;
    kinds_ready = 1;
    if (interner_init(&prefixes, body) < 0) goto done;
    prefixes_ready = 1;
    stack = PyMem_Malloc(stack_capacity * sizeof(int64_t));
    if (!stack) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t start = 0;; line++) {
        const char *nl = memchr(body + start, '\n', size - start);
        Py_ssize_t end = nl ? nl - body : size;
        char first = start < end ? body[start] : '\n';
        int64_t owner = -1;
        unsigned char is_content = 0;
        if (first == '(') {
            Py_ssize_t kind = intern(&kinds, start + 1, end - start - 1);
            if (kind < 0) goto done;
            owner = depth ? stack[depth - 1] : -1;
            if (buffer_int64(&arrays[OPENS], line) < 0 || buffer_int64(&arrays[N_DEPTH], depth) < 0 ||
                buffer_int64(&arrays[N_KIND], kind) < 0)
                goto done;
            if (depth == stack_capacity) {
                stack_capacity *= 2;
                int64_t *grown = PyMem_Realloc(stack, stack_capacity * sizeof(int64_t));
                if (!grown) {
                    PyErr_NoMemory();
                    goto done;
                }
                stack = grown;
            }
            stack[depth++] = nodes++;
        } else if (first == ')') {
            if (!depth) {
                PyErr_SetString(PyExc_ValueError, "a story closes that was not open");
                goto done;
            }
            if (buffer_int64(&arrays[CLOSES], line) < 0 || buffer_int64(&arrays[CLOSED], stack[--depth]) < 0)
                goto done;
        } else {
            if (!depth) {
                PyErr_SetString(PyExc_ValueError, "text outside any story");
                goto done;
            }
            owner = stack[depth - 1];
            is_content = 1;
            const char *equals = memchr(body + start, '=', end - start);
            if (equals) {
                Py_ssize_t value = equals - body + 1, width = 1;
                while (value < end && body[value] == ' ') value++;
                for (const char *p = body + value; (p = memchr(p, ' ', body + end - p)); p++) width++;
                Py_ssize_t prefix = intern(&prefixes, start, value - start);
                if (prefix < 0 || buffer_int64(&arrays[E_LINE], line) < 0 ||
                    buffer_int64(&arrays[E_PREFIX], prefix) < 0 || buffer_int64(&arrays[E_START], value) < 0 ||
                    buffer_int64(&arrays[E_END], end) < 0 || buffer_int64(&arrays[E_WIDTH], width) < 0)
                    goto done;
            }
        }
        if (buffer_int64(&arrays[L_START], start) < 0 || buffer_int64(&arrays[L_END], end) < 0 ||
            buffer_int64(&arrays[L_OWNER], owner) < 0 || buffer_put(&content, &is_content, 1) < 0)
            goto done;
        if (!nl) break;
        start = end + 1;
    }
    if (depth) {
        PyErr_SetString(PyExc_ValueError, "a story is not closed");
        goto done;
    }
    result = PyDict_New();
    if (!result) goto done;
    static const char *names[N_ARRAYS] = {"line_start", "line_end", "owner", "opens", "closes", "closed",
                                          "depth", "kind", "entry_line", "entry_prefix", "entry_start",
                                          "entry_end", "entry_width"};
    for (int i = 0; i < N_ARRAYS; i++) {
        PyObject *value = buffer_bytes(&arrays[i]);
        if (!value || PyDict_SetItemString(result, names[i], value) < 0) {
            Py_XDECREF(value);
            Py_CLEAR(result);
            goto done;
        }
        Py_DECREF(value);
    }
    PyObject *extra[3] = {buffer_bytes(&content), interner_list(&kinds), interner_list(&prefixes)};
    static const char *extra_names[3] = {"content", "kinds", "prefixes"};
    for (int i = 0; i < 3; i++) {
        if (!extra[i] || PyDict_SetItemString(result, extra_names[i], extra[i]) < 0) Py_CLEAR(result);
    }
    for (int i = 0; i < 3; i++) Py_XDECREF(extra[i]);
done:
    for (int i = 0; i < N_ARRAYS; i++) PyMem_Free(arrays[i].data);
    PyMem_Free(content.data);
    PyMem_Free(stack);
    if (kinds_ready) interner_free(&kinds);
    if (prefixes_ready) interner_free(&prefixes);
    PyBuffer_Release(&view);
    return result;
}

/* ---- exact decimal printing ------------------------------------------------------------ */

static int bit_length(u128 v) {
    int n = 0;
    uint64_t high = (uint64_t)(v >> 64);
    if (high) return 64 + (64 - __builtin_clzll(high));
    uint64_t low = (uint64_t)v;
    if (low) n = 64 - __builtin_clzll(low);
    return n;
}

/* Shift mantissa left so that mantissa * 2^exponent is expressed at 2^target; 0 on overflow. */
static int align(u128 *mantissa, int exponent, int target) {
    int shift = exponent - target;
    if (*mantissa == 0) return 1;
    if (shift > 126 || bit_length(*mantissa) + shift > 126) return 0;
    *mantissa <<= shift;
    return 1;
}

/* Is |x| (finite, non-zero) within half a unit of M * 10^E, the unit being 10^E?
 * 1 yes, 0 no, -1 undecided (an exact tie, or too wide for 128 bits). */
static int within_half_unit(double x, uint64_t M, int E) {
    int e2;
    double fraction = frexp(fabs(x), &e2);
    uint64_t m = (uint64_t)ldexp(fraction, 53);
    int e = e2 - 53;
    int zeros = __builtin_ctzll(m);
    m >>= zeros;
    e += zeros;
    int p5 = E < 0 ? -E : E;
    if (p5 > MAX_POW5) return -1;
    u128 a, b, h;
    int ea = e, eb = E, eh = E - 1;
    if (E >= 0) {
        a = m;
        if (bit_length(POW5[p5]) + 64 > 126) return -1;
        b = (u128)M * POW5[p5];
        h = POW5[p5];
    } else {
        if (bit_length(POW5[p5]) + 53 > 126) return -1;
        a = (u128)m * POW5[p5];
        b = M;
        h = 1;
    }
    int target = ea < eb ? ea : eb;
    if (eh < target) target = eh;
    if (!align(&a, ea, target) || !align(&b, eb, target) || !align(&h, eh, target)) return -1;
    u128 diff = a > b ? a - b : b - a;
    if (diff == h) return -1;
    return diff < h;
}

/* The canonical digits of a token printed with format code `code` (Python's
 * "%.{d}f" for code < 128, "%.{d}e" for code - 128 = d): sign, M and E with
 * value M * 10^E.  0 when the token is not in the exact form such printing gives
 * (the caller then compares with snprintf), or has more than 19 digits. */
static int canonical(const char *s, Py_ssize_t n, int code, int *negative, uint64_t *M, int *E) {
    Py_ssize_t i = 0;
    int d = code & 127, exponent_style = code >= 128;
    uint64_t value = 0;
    int digits = 0;
    *negative = 0;
    if (i < n && s[i] == '-') {
        *negative = 1;
        i++;
    }
    Py_ssize_t int_start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (digits || s[i] != '0') {
            if (++digits > 19) return 0;
        }
        value = value * 10 + (s[i] - '0');
        i++;
    }
    Py_ssize_t int_digits = i - int_start;
    if (int_digits == 0) return 0;
    if (exponent_style ? int_digits != 1 : (int_digits > 1 && s[int_start] == '0')) return 0;
    if (d) {
        if (i >= n || s[i] != '.') return 0;
        i++;
        for (int k = 0; k < d; k++, i++) {
            if (i >= n || s[i] < '0' || s[i] > '9') return 0;
            if (digits || s[i] != '0') {
                if (++digits > 19) return 0;
            }
            value = value * 10 + (s[i] - '0');
        }
    }
    int exponent = 0;
    if (exponent_style) {
        if (i >= n || s[i] != 'e') return 0;
        i++;
        if (i >= n || (s[i] != '+' && s[i] != '-')) return 0;
        int sign = s[i] == '-' ? -1 : 1;
        i++;
        Py_ssize_t exp_start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - exp_start < 5) exponent = exponent * 10 + (s[i++] - '0');
        Py_ssize_t exp_digits = i - exp_start;
        if (exp_digits < 2 || (exp_digits > 2 && s[exp_start] == '0')) return 0;
        if (exponent == 0 && sign < 0) return 0; /* printf writes e+00 */
        if (value == 0 && exponent != 0) return 0;
        if (value != 0 && s[int_start] == '0') return 0;
        exponent *= sign;
    }
    if (i != n) return 0;
    *M = value;
    *E = exponent - d;
    return 1;
}

static const char *FORMAT_FIXED = "%.*f", *FORMAT_EXPONENT = "%.*e";

static int snprintf_equals(const char *token, Py_ssize_t n, double x, int code) {
    char buffer[400];
    int length = snprintf(buffer, sizeof buffer, code >= 128 ? FORMAT_EXPONENT : FORMAT_FIXED, code & 127, x);
    return length == n && memcmp(buffer, token, n) == 0;
}

/* Does x print back as this token with this code?  1 yes, 0 no. */
static int prints_back(const char *token, Py_ssize_t n, double x, int code) {
    int negative, E;
    uint64_t M;
    if (canonical(token, n, code, &negative, &M, &E)) {
        if (M == 0) return x == 0 && (signbit(x) != 0) == negative;
        if (x == 0 || (signbit(x) != 0) != negative) return 0;
        /* "1.000e+X" may also be what printf makes of a value just below 10^X,
         * printed at X - 1 and rounded up; snprintf settles it. */
        if (!(code >= 128 && M == POW10[code & 127])) {
            int verdict = within_half_unit(x, M, E);
            if (verdict >= 0) return verdict;
        }
    }
    return snprintf_equals(token, n, x, code);
}

static int digits_of(uint64_t M, char *out) {
    char reversed[24];
    int n = 0;
    do {
        reversed[n++] = '0' + M % 10;
        M /= 10;
    } while (M);
    for (int i = 0; i < n; i++) out[i] = reversed[n - 1 - i];
    return n;
}

static int format_int(int64_t value, char *out) {
    int length = 0;
    uint64_t magnitude = (uint64_t)value;
    if (value < 0) {
        out[length++] = '-';
        magnitude = 0 - magnitude;
    }
    return length + digits_of(magnitude, out + length);
}

/* Round |x| to the nearest multiple of 10^E as an integer, proven by within_half_unit;
 * 0 if that cannot be done here. */
static int nearest_digits(double x, int E, uint64_t *M) {
    if (E > MAX_POW10L || E < -MAX_POW10L) return 0;
    long double scaled = E >= 0 ? fabsl((long double)x) / POW10L[E] : fabsl((long double)x) * POW10L[-E];
    if (!(scaled < 1.8e19L)) return 0;
    uint64_t guess = (uint64_t)(scaled + 0.5L);
    /* One correctly rounded long double operation on exact operands: the error is at
     * most scaled * 2^-64.  Away from a tie by twice that, the rounding is certain. */
    long double fraction = scaled - (long double)(uint64_t)scaled;
    if (fabsl(fraction - 0.5L) > scaled * 0x1p-63L + 0x1p-60L) {
        *M = guess;
        return 1;
    }
    /* The long double estimate is off by at most one; the proof picks the right neighbour. */
    const int64_t deltas[5] = {0, 1, -1, 2, -2};
    for (int k = 0; k < 5; k++) {
        if (deltas[k] < 0 && guess < (uint64_t)-deltas[k]) continue;
        uint64_t candidate = guess + deltas[k];
        int verdict = within_half_unit(x, candidate, E);
        if (verdict < 0) return 0;
        if (verdict) {
            *M = candidate;
            return 1;
        }
    }
    return 0;
}

/* Print x with format code `code` into out (at least 400 bytes); returns the length. */
static int format_number(double x, int code, char *out) {
    int d = code & 127;
    uint64_t M;
    if (isfinite(x) && x != 0 && (code < 128 || d <= 18)) { /* e-style digits must fit in 64 bits */
        char digits[24];
        int n = 0, length = 0;
        if (code < 128) {
            if (nearest_digits(x, -d, &M)) {
                n = digits_of(M, digits);
                if (signbit(x)) out[length++] = '-';
                if (n <= d) {
                    out[length++] = '0';
                    if (d) {
                        out[length++] = '.';
                        memset(out + length, '0', d - n);
                        length += d - n;
                        memcpy(out + length, digits, n);
                        length += n;
                    }
                } else {
                    memcpy(out + length, digits, n - d);
                    length += n - d;
                    if (d) {
                        out[length++] = '.';
                        memcpy(out + length, digits + n - d, d);
                        length += d;
                    }
                }
                return length;
            }
        } else {
            int X = (int)floor(log10(fabs(x)));
            for (int attempt = 0; attempt < 3; attempt++) {
                if (!nearest_digits(x, X - d, &M)) break;
                if (M >= POW10[d + 1]) {
                    X++;
                    continue;
                }
                if (M < POW10[d]) {
                    X--;
                    continue;
                }
                if (M == POW10[d]) break; /* the rounding-up edge: leave it to snprintf */
                n = digits_of(M, digits);
                if (signbit(x)) out[length++] = '-';
                out[length++] = digits[0];
                if (d) {
                    out[length++] = '.';
                    memcpy(out + length, digits + 1, d);
                    length += d;
                }
                out[length++] = 'e';
                out[length++] = X < 0 ? '-' : '+';
                int magnitude = X < 0 ? -X : X;
                if (magnitude >= 100) out[length++] = '0' + magnitude / 100;
                out[length++] = '0' + (magnitude / 10) % 10;
                out[length++] = '0' + magnitude % 10;
                return length;
            }
        }
    }
    return snprintf(out, 400, code >= 128 ? FORMAT_EXPONENT : FORMAT_FIXED, d, x);
}

/* ---- typing a value column ------------------------------------------------------------- */

/* A C-contiguous array of 8-byte numbers whose buffer format is `format` or `alias` (NULL
 * for none); else a TypeError saying it should be an array of `what`. */
static int read_8byte_numbers(PyObject *object, Py_buffer *view, const char *format, const char *alias,
                              const char *what) {
    if (PyObject_GetBuffer(object, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != 8 ||
        (view->format && strcmp(view->format, format) && (!alias || strcmp(view->format, alias)))) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "expected an %s array", what);
        return -1;
    }
    return 0;
}

static int read_int64s(PyObject *object, Py_buffer *view) {
    return read_8byte_numbers(object, view, "q", "l", "int64");
}

static int is_fractional(const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (s[i] == '.' || s[i] == 'e' || s[i] == 'E') return 1;
    return 0;
}

/* A plain integer as str(int) prints it, within int64; 0 otherwise. */
static int canonical_int(const char *s, Py_ssize_t n, int64_t *out) {
    Py_ssize_t i = 0;
    int negative = 0;
    if (n && s[0] == '-') {
        negative = 1;
        i = 1;
    }
    if (i >= n || (s[i] == '0' && (n - i > 1 || negative)) || n - i > 19) return 0;
    uint64_t value = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        value = value * 10 + (s[i] - '0');
    }
    if (value > (uint64_t)INT64_MAX + negative) return 0;
    *out = negative ? (int64_t)(0 - value) : (int64_t)value;
    return 1;
}

/* Where a value's token that starts at `position` ends: at the next space, or at the
 * value's end for its last token. */
static Py_ssize_t token_end(const char *body, Py_ssize_t position, Py_ssize_t end, int last) {
    const char *space = last ? NULL : memchr(body + position, ' ', end - position);
    return space ? space - body : end;
}

/* Python's format_codes() for one token. */
static int format_code(const char *s, Py_ssize_t n) {
    const char *dot = memchr(s, '.', n), *exp = memchr(s, 'e', n);
    Py_ssize_t end = exp ? exp - s : n;
    Py_ssize_t code = (dot ? end - (dot - s) - 1 : 0) + (exp ? 128 : 0);
    return code < 0 ? 0 : code > 255 ? 255 : (int)code;
}

/* type_column(body, starts, ends, width) -> ("i", int64 bytes) | ("f", float64 bytes,
 * code bytes, bad-token bytes) | None, as Column.fill would type the values
 * body[starts[k]:ends[k]] (each of `width` space-separated tokens). */
static PyObject *type_column(PyObject *self, PyObject *args) {
    Py_buffer body_view, starts_view, ends_view;
    PyObject *starts_object, *ends_object;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "y*OOn", &body_view, &starts_object, &ends_object, &width)) return NULL;
    PyObject *result = NULL;
    char *ints_or_floats = NULL;
    unsigned char *codes = NULL, *bad = NULL;
    if (read_int64s(starts_object, &starts_view) < 0) {
        PyBuffer_Release(&body_view);
        return NULL;
    }
    if (read_int64s(ends_object, &ends_view) < 0) {
        PyBuffer_Release(&starts_view);
        PyBuffer_Release(&body_view);
        return NULL;
    }
    const char *body = body_view.buf;
    const int64_t *starts = starts_view.buf, *ends = ends_view.buf;
    Py_ssize_t values = starts_view.len / 8, count = values * width;
    ints_or_floats = PyMem_Malloc(count * 8 + 1);
    codes = PyMem_Malloc(count + 1);
    bad = PyMem_Calloc(count + 1, 1);
    if (!ints_or_floats || !codes || !bad) {
        PyErr_NoMemory();
        goto done;
    }
    int fractional = -1, floats = 0;
    Py_ssize_t token = 0;
    /* Pass 1: integers, when the first token allows them (as Column.fill decides). */
    for (Py_ssize_t v = 0; v < values && !floats; v++) {
        Py_ssize_t position = starts[v];
        for (Py_ssize_t k = 0; k < width; k++, token++) {
            Py_ssize_t stop = token_end(body, position, ends[v], k + 1 == width);
            const char *s = body + position;
            Py_ssize_t n = stop - position;
            if (fractional < 0) fractional = is_fractional(s, n);
            if (fractional || is_fractional(s, n)) {
                floats = 1; /* int() refuses every such token, so the column is read as floats */
                break;
            }
            if (!canonical_int(s, n, (int64_t *)ints_or_floats + token)) {
                Py_INCREF(Py_None);
                result = Py_None;
                goto done;
            }
            position = stop + 1;
        }
    }
    if (!floats && values) {
        result = Py_BuildValue("(sy#)", "i", ints_or_floats, count * 8);
        goto done;
    }
    token = 0;
    char local[64];
    double *out = (double *)ints_or_floats;
    for (Py_ssize_t v = 0; v < values; v++) {
        Py_ssize_t position = starts[v];
        for (Py_ssize_t k = 0; k < width; k++, token++) {
            Py_ssize_t stop = token_end(body, position, ends[v], k + 1 == width);
            const char *s = body + position;
            Py_ssize_t n = stop - position;
            position = stop + 1;
            if (n == 0 || n >= (Py_ssize_t)sizeof local) goto reference;
            memcpy(local, s, n);
            local[n] = 0;
            char *parsed_to;
            double x = strtod(local, &parsed_to);
            /* strtod reads hex, "inf" and "nan" where Python's float() differs: Python decides */
            if (parsed_to != local + n || !isfinite(x) || memchr(s, 'x', n) || memchr(s, 'X', n)) goto reference;
            int code = format_code(s, n);
            out[token] = x;
            codes[token] = (unsigned char)code;
            bad[token] = !prints_back(s, n, x, code);
        }
    }
    result = Py_BuildValue("(sy#y#y#)", "f", ints_or_floats, count * 8, codes, count, bad, count);
    goto done;
reference:
    Py_INCREF(Py_None);
    result = Py_None;
done:
    PyMem_Free(ints_or_floats);
    PyMem_Free(codes);
    PyMem_Free(bad);
    PyBuffer_Release(&ends_view);
    PyBuffer_Release(&starts_view);
    PyBuffer_Release(&body_view);
    return result;
}

/* ---- templates: each node's item sequence, interned ------------------------------------ */

/* intern_templates(items, owner, closed, node_kind) -> (node_template int64 bytes,
 * [(kind, items int32 bytes)]): the items (int32 per line) of each node's lines in
 * line order, keyed by (kind, items) and numbered in the order the nodes close. */
static PyObject *intern_templates(PyObject *self, PyObject *args) {
    Py_buffer items_view, owner_view, closed_view, kind_view;
    PyObject *items_object, *owner_object, *closed_object, *kind_object, *result = NULL;
    if (!PyArg_ParseTuple(args, "OOOO", &items_object, &owner_object, &closed_object, &kind_object)) return NULL;
    if (PyObject_GetBuffer(items_object, &items_view, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (read_int64s(owner_object, &owner_view) < 0) goto release_items;
    if (read_int64s(closed_object, &closed_view) < 0) goto release_owner;
    if (read_int64s(kind_object, &kind_view) < 0) goto release_closed;
    Py_ssize_t n_lines = owner_view.len / 8, n_nodes = kind_view.len / 8, n_closed = closed_view.len / 8;
    const int32_t *items = items_view.buf;
    const int64_t *owner = owner_view.buf, *closed = closed_view.buf, *kind = kind_view.buf;
    Py_ssize_t *offsets = PyMem_Calloc(n_nodes + 1, sizeof(Py_ssize_t));
    Py_ssize_t *fill = PyMem_Calloc(n_nodes + 1, sizeof(Py_ssize_t));
    int32_t *grouped = PyMem_Malloc((n_lines + n_nodes + 1) * sizeof(int32_t));
    int64_t *node_template = PyMem_Malloc((n_nodes + 1) * sizeof(int64_t));
    Interner interner;
    int interner_ready = 0;
    if (!offsets || !fill || !grouped || !node_template) {
        PyErr_NoMemory();
        goto done;
    }
    if (items_view.len != n_lines * 4 || n_closed != n_nodes) {
        PyErr_SetString(PyExc_ValueError, "items, owners and nodes do not line up");
        goto done;
    }
    for (Py_ssize_t line = 0; line < n_lines; line++) {
        if (owner[line] >= n_nodes) {
            PyErr_SetString(PyExc_ValueError, "a line names a node that does not exist");
            goto done;
        }
        if (owner[line] >= 0) offsets[owner[line] + 1]++;
    }
    for (Py_ssize_t node = 0; node < n_nodes; node++) {
        offsets[node + 1] += offsets[node] + 1; /* one slot for the kind */
        grouped[offsets[node]] = (int32_t)kind[node];
        fill[node] = offsets[node] + 1;
    }
    for (Py_ssize_t line = 0; line < n_lines; line++)
        if (owner[line] >= 0) grouped[fill[owner[line]]++] = items[line];
    if (interner_init(&interner, (const char *)grouped) < 0) goto done;
    interner_ready = 1;
    for (Py_ssize_t k = 0; k < n_closed; k++) {
        int64_t node = closed[k];
        if (node < 0 || node >= n_nodes) {
            PyErr_SetString(PyExc_ValueError, "a closed story names a node that does not exist");
            goto done;
        }
        Py_ssize_t id = intern(&interner, offsets[node] * 4, (offsets[node + 1] - offsets[node]) * 4);
        if (id < 0) goto done;
        node_template[node] = id;
    }
    PyObject *distinct = PyList_New(interner.count);
    if (!distinct) goto done;
    for (Py_ssize_t i = 0; i < interner.count; i++) {
        const int32_t *start = (const int32_t *)(interner.base + interner.start[i]);
        PyObject *entry = Py_BuildValue("(iy#)", (int)start[0], (const char *)(start + 1), interner.length[i] - 4);
        if (!entry) {
            Py_DECREF(distinct);
            goto done;
        }
        PyList_SET_ITEM(distinct, i, entry);
    }
    result = Py_BuildValue("(y#N)", (const char *)node_template, n_nodes * 8, distinct);
done:
    if (interner_ready) interner_free(&interner);
    PyMem_Free(offsets);
    PyMem_Free(fill);
    PyMem_Free(grouped);
    PyMem_Free(node_template);
    PyBuffer_Release(&kind_view);
release_closed:
    PyBuffer_Release(&closed_view);
release_owner:
    PyBuffer_Release(&owner_view);
release_items:
    PyBuffer_Release(&items_view);
    return result;
}

/* ---- printing a record back to text ---------------------------------------------------- */

enum { COLUMN_STRINGS = 0, COLUMN_INTS = 1, COLUMN_FLOATS = 2 };

typedef struct {
    int type;
    Py_ssize_t width, next, override_next, override_count;
    Py_buffer data, codes, override_at;
    int has_data, has_codes, has_overrides;
    PyObject *strings, *override_text; /* borrowed */
} RenderColumn;

static int put_str(Buffer *out, PyObject *text) {
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
    if (!utf8) return -1;
    return buffer_put(out, utf8, n);
}

static int put_value(Buffer *out, RenderColumn *c) {
    Py_ssize_t occurrence = c->next++;
    if (c->override_next < c->override_count &&
        ((int64_t *)c->override_at.buf)[c->override_next] == occurrence) {
        return put_str(out, PyList_GET_ITEM(c->override_text, c->override_next++));
    }
    if (c->type == COLUMN_STRINGS) {
        if (occurrence >= PyList_GET_SIZE(c->strings)) goto short_column;
        return put_str(out, PyList_GET_ITEM(c->strings, occurrence));
    }
    Py_ssize_t first = occurrence * c->width;
    if ((first + c->width) * 8 > c->data.len) goto short_column;
    if (buffer_reserve(out, c->width * 400) < 0) return -1;
    for (Py_ssize_t k = 0; k < c->width; k++) {
        if (k) out->data[out->size++] = ' ';
        if (c->type == COLUMN_INTS) {
            out->size += format_int(((int64_t *)c->data.buf)[first + k], out->data + out->size);
        } else {
            int code = ((unsigned char *)c->codes.buf)[first + k];
            out->size += format_number(((double *)c->data.buf)[first + k], code, out->data + out->size);
        }
    }
    return 0;
short_column:
    PyErr_SetString(PyExc_ValueError, "a column holds fewer values than its template uses");
    return -1;
}

static int open_line(Buffer *out, PyObject *kind) {
    if (buffer_put(out, "(", 1) < 0) return -1;
    if (buffer_put(out, PyBytes_AS_STRING(kind), PyBytes_GET_SIZE(kind)) < 0) return -1;
    return buffer_put(out, "\n", 1);
}

/* render(node_template, template_kinds, template_items, entry_column, entry_prefix,
 *        columns, lines, final_newline) -> bytes: the story text as iter_decoded_lines
 * gives it.  template_items are int32 arrays (-1 a sub-story, -2 a free-text line,
 * else an entry id into entry_column/entry_prefix); columns are tuples (type, width,
 * data, codes, strings, override occurrences (sorted int64), override texts). */
static PyObject *render(PyObject *self, PyObject *args) {
    PyObject *node_template_object, *kinds, *items, *entry_column_object, *entry_prefix, *columns_object, *lines;
    int final_newline;
    if (!PyArg_ParseTuple(args, "OO!O!OO!O!Op", &node_template_object, &PyList_Type, &kinds, &PyList_Type, &items,
                          &entry_column_object, &PyList_Type, &entry_prefix, &PyList_Type, &columns_object, &lines,
                          &final_newline))
        return NULL;
    Py_buffer node_template_view, entry_column_view;
    if (read_int64s(node_template_object, &node_template_view) < 0) return NULL;
    if (read_int64s(entry_column_object, &entry_column_view) < 0) {
        PyBuffer_Release(&node_template_view);
        return NULL;
    }
    PyObject *result = NULL, *free_lines = PySequence_Fast(lines, "lines must be a sequence");
    Py_ssize_t n_columns = PyList_GET_SIZE(columns_object), n_templates = PyList_GET_SIZE(kinds);
    RenderColumn *columns = PyMem_Calloc(n_columns + 1, sizeof(RenderColumn));
    Py_ssize_t *stack = NULL, stack_capacity = 64, depth = 0;
    Buffer out = {0};
    if (!free_lines || !columns) goto done;
    for (Py_ssize_t i = 0; i < n_columns; i++) {
        RenderColumn *c = &columns[i];
        PyObject *spec = PyList_GET_ITEM(columns_object, i), *data, *codes, *override_at;
        if (!PyArg_ParseTuple(spec, "inOOOOO!", &c->type, &c->width, &data, &codes, &c->strings, &override_at,
                              &PyList_Type, &c->override_text))
            goto done;
        if (c->type != COLUMN_STRINGS) {
            if (PyObject_GetBuffer(data, &c->data, PyBUF_C_CONTIGUOUS) < 0) goto done;
            c->has_data = 1;
        } else if (!PyList_Check(c->strings)) {
            PyErr_SetString(PyExc_TypeError, "a string column needs a list");
            goto done;
        }
        if (c->type == COLUMN_FLOATS) {
            if (PyObject_GetBuffer(codes, &c->codes, PyBUF_C_CONTIGUOUS) < 0) goto done;
            c->has_codes = 1;
            if (c->codes.len * 8 != c->data.len) {
                PyErr_SetString(PyExc_ValueError, "a float column needs one code per value");
                goto done;
            }
        }
        if (read_int64s(override_at, &c->override_at) < 0) goto done;
        c->has_overrides = 1;
        c->override_count = c->override_at.len / 8;
        if (c->override_count != PyList_GET_SIZE(c->override_text)) {
            PyErr_SetString(PyExc_ValueError, "override occurrences and texts differ in number");
            goto done;
        }
    }
    const int64_t *node_template = node_template_view.buf, *entry_column = entry_column_view.buf;
    Py_ssize_t n_nodes = node_template_view.len / 8, n_entries = entry_column_view.len / 8;
    Py_ssize_t n_lines = PySequence_Fast_GET_SIZE(free_lines), next_line = 0, next_node = 0;
    stack = PyMem_Malloc(stack_capacity * 2 * sizeof(Py_ssize_t));
    if (!stack) {
        PyErr_NoMemory();
        goto done;
    }
    if (n_nodes == 0) {
        PyErr_SetString(PyExc_ValueError, "a record with no story");
        goto done;
    }
#define CHECK_TEMPLATE(t)                                                                 \
    if ((t) < 0 || (t) >= n_templates) {                                                  \
        PyErr_SetString(PyExc_ValueError, "a node names a template that does not exist"); \
        goto done;                                                                        \
    }
    Py_ssize_t template = node_template[next_node++], position = 0;
    CHECK_TEMPLATE(template);
    if (open_line(&out, PyList_GET_ITEM(kinds, template)) < 0) goto done;
    for (;;) {
        PyObject *item_bytes = PyList_GET_ITEM(items, template);
        Py_ssize_t n_items = PyBytes_GET_SIZE(item_bytes) / 4;
        const int32_t *template_items = (const int32_t *)PyBytes_AS_STRING(item_bytes);
        if (position < n_items) {
            int32_t item = template_items[position++];
            if (item == -1) {
                if (next_node >= n_nodes) {
                    PyErr_SetString(PyExc_ValueError, "a template names more sub-stories than the record holds");
                    goto done;
                }
                if (depth == stack_capacity) {
                    stack_capacity *= 2;
                    Py_ssize_t *grown = PyMem_Realloc(stack, stack_capacity * 2 * sizeof(Py_ssize_t));
                    if (!grown) {
                        PyErr_NoMemory();
                        goto done;
                    }
                    stack = grown;
                }
                stack[2 * depth] = template;
                stack[2 * depth + 1] = position;
                depth++;
                template = node_template[next_node++];
                CHECK_TEMPLATE(template);
                position = 0;
                if (open_line(&out, PyList_GET_ITEM(kinds, template)) < 0) goto done;
            } else if (item == -2) {
                if (next_line >= n_lines) {
                    PyErr_SetString(PyExc_ValueError, "a template names more text lines than the record holds");
                    goto done;
                }
                if (put_str(&out, PySequence_Fast_GET_ITEM(free_lines, next_line++)) < 0 ||
                    buffer_put(&out, "\n", 1) < 0)
                    goto done;
            } else {
                if (item < 0 || item >= n_entries || entry_column[item] < 0 || entry_column[item] >= n_columns) {
                    PyErr_SetString(PyExc_ValueError, "a template names an entry that does not exist");
                    goto done;
                }
                PyObject *prefix = PyList_GET_ITEM(entry_prefix, item);
                if (buffer_put(&out, PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix)) < 0 ||
                    put_value(&out, &columns[entry_column[item]]) < 0 || buffer_put(&out, "\n", 1) < 0)
                    goto done;
            }
        } else {
            PyObject *kind = PyList_GET_ITEM(kinds, template);
            if (buffer_put(&out, ")", 1) < 0 || buffer_put(&out, PyBytes_AS_STRING(kind), PyBytes_GET_SIZE(kind)) < 0 ||
                buffer_put(&out, "\n", 1) < 0)
                goto done;
            if (!depth) break;
            depth--;
            template = stack[2 * depth];
            position = stack[2 * depth + 1];
        }
    }
    if (!final_newline) out.size--;
    result = PyBytes_FromStringAndSize(out.data, out.size);
done:
    if (columns) {
        for (Py_ssize_t i = 0; i < n_columns; i++) {
            if (columns[i].has_data) PyBuffer_Release(&columns[i].data);
            if (columns[i].has_codes) PyBuffer_Release(&columns[i].codes);
            if (columns[i].has_overrides) PyBuffer_Release(&columns[i].override_at);
        }
    }
    PyMem_Free(columns);
    PyMem_Free(stack);
    PyMem_Free(out.data);
    Py_XDECREF(free_lines);
    PyBuffer_Release(&entry_column_view);
    PyBuffer_Release(&node_template_view);
    return result;
}

/* format_floats(values, codes) -> list[str], as numbers.format_floats (for tests and reuse). */
static PyObject *format_floats(PyObject *self, PyObject *args) {
    Py_buffer values, codes;
    if (!PyArg_ParseTuple(args, "y*y*", &values, &codes)) return NULL;
    PyObject *list = NULL;
    if (values.len != codes.len * 8) {
        PyErr_SetString(PyExc_ValueError, "one code per value");
        goto done;
    }
    Py_ssize_t n = codes.len;
    list = PyList_New(n);
    if (!list) goto done;
    char buffer[400];
    for (Py_ssize_t i = 0; i < n; i++) {
        int length = format_number(((double *)values.buf)[i], ((unsigned char *)codes.buf)[i], buffer);
        PyObject *text = PyUnicode_FromStringAndSize(buffer, length);
        if (!text) {
            Py_CLEAR(list);
            goto done;
        }
        PyList_SET_ITEM(list, i, text);
    }
done:
    PyBuffer_Release(&values);
    PyBuffer_Release(&codes);
    return list;
}

/* ---- packed arrays ---------------------------------------------------------------------- */

/* unshuffle(data, itemsize) -> bytearray: data holds byte 0 of every number, then byte 1 of
 * every number, and so on (intpack's byte shuffle); the result holds the numbers whole. */
static PyObject *unshuffle(PyObject *self, PyObject *args) {
    Py_buffer data;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "y*n", &data, &width)) return NULL;
    PyObject *result = NULL;
    if (width < 1 || data.len % width) {
        PyErr_SetString(PyExc_ValueError, "shuffled data is not a whole number of values");
        goto done;
    }
    Py_ssize_t count = data.len / width;
    result = PyByteArray_FromStringAndSize(NULL, data.len);
    if (!result) goto done;
    const unsigned char *in = data.buf;
    unsigned char *out = (unsigned char *)PyByteArray_AS_STRING(result);
    for (Py_ssize_t b = 0; b < width; b++) {
        const unsigned char *plane = in + b * count;
        for (Py_ssize_t k = 0; k < count; k++) out[k * width + b] = plane[k];
    }
done:
    PyBuffer_Release(&data);
    return result;
}

/* ---- stars from star rows -------------------------------------------------------------- */

typedef struct {
    int64_t id;
    Py_ssize_t row;
} Star;

static int by_id_then_row(const void *a, const void *b) {
    const Star *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* Sort stars by id, ties in row order. Starlab numbers its stars 1..N, so ids in a range of a
 * few times the count take a counting sort (stable, linear); others take qsort. */
static int sort_dense_ids(Star *stars, Py_ssize_t count) {
    if (count < 2) return 0;
    int64_t low = stars[0].id, high = stars[0].id;
    for (Py_ssize_t k = 1; k < count; k++) {
        if (stars[k].id < low) low = stars[k].id;
        if (stars[k].id > high) high = stars[k].id;
    }
    if ((uint64_t)high - (uint64_t)low >= (uint64_t)(4 * count + 64)) {
        qsort(stars, count, sizeof(Star), by_id_then_row);
        return 0;
    }
    Py_ssize_t range = (Py_ssize_t)(high - low) + 1;
    Py_ssize_t *start = PyMem_Calloc(range + 1, sizeof(Py_ssize_t));
    Star *sorted = PyMem_Malloc(count * sizeof(Star));
    if (!start || !sorted) {
        PyMem_Free(start);
        PyMem_Free(sorted);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < count; k++) start[stars[k].id - low + 1]++;
    for (Py_ssize_t k = 0; k < range; k++) start[k + 1] += start[k];
    for (Py_ssize_t k = 0; k < count; k++) sorted[start[stars[k].id - low]++] = stars[k];  /* rows ascend */
    memcpy(stars, sorted, count * sizeof(Star));
    PyMem_Free(start);
    PyMem_Free(sorted);
    return 0;
}

static int read_float64s(PyObject *object, Py_buffer *view, Py_ssize_t count) {
    if (read_8byte_numbers(object, view, "d", NULL, "float64") < 0) return -1;
    if (view->len != count * 8) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "expected float64 arrays of one value per row (three for r and v)");
        return -1;
    }
    return 0;
}

/* stars(parent, index, name or None, mass, pos, vel) -> bytearray of PARTICLE_DTYPE records,
 * as stars.star_table: pos and vel component by component (all x, all y, all z); each row's
 * parent row comes before it (pre-order), so one forward pass sums root-down. */
static PyObject *stars(PyObject *self, PyObject *args) {
    PyObject *objects[6];
    if (!PyArg_ParseTuple(args, "OOOOOO", &objects[0], &objects[1], &objects[2], &objects[3], &objects[4],
                          &objects[5]))
        return NULL;
    Py_buffer parent_view, views[5];
    int held = 0;
    PyObject *result = NULL;
    double *absolute = NULL;
    char *has_child = NULL;
    Star *leaves = NULL;
    if (read_int64s(objects[0], &parent_view) < 0) return NULL;
    Py_ssize_t n = parent_view.len / 8;
    Py_ssize_t counts[5] = {n, n, n, 3 * n, 3 * n};
    for (; held < 5; held++) {
        if (held == 1 && objects[2] == Py_None) continue;
        if (read_float64s(objects[held + 1], &views[held], counts[held]) < 0) goto done;
    }
    const int64_t *parent = parent_view.buf;
    const double *index = views[0].buf, *name = objects[2] == Py_None ? NULL : views[1].buf;
    const double *mass = views[2].buf, *pos = views[3].buf, *vel = views[4].buf;
    absolute = PyMem_Malloc(6 * (size_t)(n ? n : 1) * sizeof(double));
    has_child = PyMem_Calloc(n ? n : 1, 1);
    leaves = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(Star));
    if (!absolute || !has_child || !leaves) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t row = 0; row < n; row++) {
        int64_t up = parent[row];
        if (up < -1 || up >= row) {
            PyErr_SetString(PyExc_ValueError, "a star row's parent does not come before it");
            goto done;
        }
        for (int c = 0; c < 3; c++) {
            double p = pos[c * n + row], v = vel[c * n + row];
            absolute[6 * row + c] = up < 0 ? p : p + absolute[6 * up + c];
            absolute[6 * row + 3 + c] = up < 0 ? v : v + absolute[6 * up + 3 + c];
        }
        if (up >= 0) has_child[up] = 1;
    }
    Py_ssize_t count = 0;
    for (Py_ssize_t row = 0; row < n; row++) {
        if (has_child[row]) continue;
        double id = index[row];
        if (isnan(id) && name) id = name[row];
        int whole = isfinite(id) && id == trunc(id) && fabs(id) < 4611686018427387904.0; /* 2^62 */
        leaves[count].id = whole ? (int64_t)id : -1;
        leaves[count++].row = row;
    }
    if (sort_dense_ids(leaves, count) < 0) goto done;
    result = PyByteArray_FromStringAndSize(NULL, count * 64);
    if (!result) goto done;
    char *out = PyByteArray_AS_STRING(result);
    for (Py_ssize_t k = 0; k < count; k++) {
        double fields[7];
        Py_ssize_t row = leaves[k].row;
        fields[0] = mass[row];
        memcpy(fields + 1, absolute + 6 * row, 6 * sizeof(double));
        memcpy(out + 64 * k, &leaves[k].id, 8);
        memcpy(out + 64 * k + 8, fields, 56);
    }
done:
    PyMem_Free(absolute);
    PyMem_Free(has_child);
    PyMem_Free(leaves);
    for (int k = 0; k < held; k++)
        if (!(k == 1 && objects[2] == Py_None)) PyBuffer_Release(&views[k]);
    PyBuffer_Release(&parent_view);
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
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernel", "The codec's compiled hot loops.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__kernel(void) {
    POW5[0] = 1;
    for (int k = 1; k <= MAX_POW5; k++) POW5[k] = POW5[k - 1] * 5;
    POW10L[0] = 1.0L;
    for (int k = 1; k <= MAX_POW10L; k++) POW10L[k] = POW10L[k - 1] * 10.0L;
    POW10[0] = 1;
    for (int k = 1; k < 20; k++) POW10[k] = POW10[k - 1] * 10;
    return PyModule_Create(&module);
}
