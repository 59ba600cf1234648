/* Reading story text: cutting a stream into root stories, scanning a story's lines and
 * entries, typing a value column, and grouping each node's items into templates.
 * The pure Python/numpy twins (story/reader.py, codec/scan.py, codec/columns.py,
 * codec/numbers.py) are the reference; each function here gives their answer, or
 * SK_DECLINED so that they decide. */
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

#define FAIL(message)           \
    do {                        \
        *why = (message);       \
        status = SK_INVALID;    \
        goto done;              \
    } while (0)

/* ---- cutting a stream into root stories -------------------------------------------- */

static int is_kind_char(uint8_t c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

#define PACK_KIND "snapstore-pack"

int sk_split_roots(const uint8_t *data, size_t size, size_t start, const sk_split_state *resume,
                   sk_buffer *ends, size_t *stop, int *unfinished, sk_split_state *state, const char **why) {
    if (start > size) {
        *why = "the start lies outside the text";
        return SK_INVALID;
    }
    /* the open kinds of the current root: each name and its length */
    const uint8_t *stack_kind[SK_MAX_SPLIT_DEPTH];
    size_t stack_length[SK_MAX_SPLIT_DEPTH];
    size_t depth = 0;
    size_t root_start = start, line = start;
    int whole_lines = 1;
    *unfinished = 0;
    state->depth = 0; /* no state to resume from, unless the text ends inside a root after a whole line */
    if (resume) {
        if (resume->depth == 0 || resume->depth > SK_MAX_SPLIT_DEPTH) {
            *why = "a resumed scan needs 1 to 256 open kinds";
            return SK_INVALID;
        }
        for (size_t d = 0; d < resume->depth; d++) {
            if (resume->length[d] == 0) {
                *why = "a resumed scan's open kind is empty";
                return SK_INVALID;
            }
            for (size_t i = 0; i < resume->length[d]; i++)
                if (!is_kind_char(resume->kind[d][i])) {
                    *why = "a resumed scan's open kind is not a kind";
                    return SK_INVALID;
                }
            stack_kind[d] = resume->kind[d];
            stack_length[d] = resume->length[d];
        }
        depth = resume->depth;
    }
    while (line < size) {
        const uint8_t *newline = memchr(data + line, '\n', size - line);
        size_t end = newline ? (size_t)(newline - data) : size;
        uint8_t first = data[line];
        if (first == '(') {
            size_t length = end - line - 1;
            if (length == 0 || depth == SK_MAX_SPLIT_DEPTH) break;
            for (size_t i = line + 1; i < end; i++)
                if (!is_kind_char(data[i])) goto irregular;
            if (depth == 0) root_start = line;
            stack_kind[depth] = data + line + 1;
            stack_length[depth++] = length;
        } else if (first == ')') {
            size_t length = end - line - 1;
            if (!depth || stack_length[depth - 1] != length ||
                memcmp(stack_kind[depth - 1], data + line + 1, length) != 0)
                break;
            if (--depth == 0) {
                size_t root_end = newline ? end + 1 : end;
                if (sk_put_int64(ends, (int64_t)root_end) < 0) return SK_NOMEM;
                root_start = root_end;
            }
        } else if (!depth) {
            break; /* text between roots: the reader says what is wrong */
        }
        if (!newline) {
            line = size;
            whole_lines = 0;
            break;
        }
        line = end + 1;
    }
    if (line >= size && depth) {
        *unfinished = 1;
        if (!whole_lines) goto irregular; /* a line cut short: the next call must see it whole */
        state->depth = depth;
        for (size_t d = 0; d < depth; d++) {
            state->kind[d] = stack_kind[d];
            state->length[d] = stack_length[d];
        }
    }
irregular:
    *stop = root_start;
    return SK_OK;
}

/* ---- scan: lines, nesting and entries of one root story ------------------------------ */

void sk_scan_free(sk_scan_result *r) {
    for (int i = 0; i < SK_SCAN_ARRAYS; i++) sk_buffer_free(&r->arrays[i]);
    sk_buffer_free(&r->content);
    if (r->ready) {
        sk_interner_free(&r->kinds);
        sk_interner_free(&r->prefixes);
    }
    r->ready = 0;
}

int sk_scan(const char *body, size_t size, sk_scan_result *r, const char **why) {
    memset(r, 0, sizeof *r);
    int status = SK_NOMEM;
    int64_t *stack = NULL;
    size_t depth = 0, stack_capacity = 64, line = 0;
    int64_t nodes = 0;
    if (sk_interner_init(&r->kinds, body) < 0) return SK_NOMEM;
    if (sk_interner_init(&r->prefixes, body) < 0) {
        sk_interner_free(&r->kinds);
        return SK_NOMEM;
    }
    r->ready = 1;
    sk_buffer *a = r->arrays;
    stack = sk_malloc(stack_capacity * sizeof(int64_t));
    if (!stack) goto done;
    for (size_t start = 0;; line++) {
        const char *nl = memchr(body + start, '\n', size - start);
        size_t end = nl ? (size_t)(nl - body) : size;
        char first = start < end ? body[start] : '\n';
        int64_t owner = -1;
        unsigned char is_content = 0;
        if (first == '(') {
            if (!depth && nodes) FAIL("more than one root story");
            /* a kind is a word, as the reader takes it (beyond ASCII the reference decides), or
             * at the root the kind of a pack record (codec/framing.py's PACK_KIND) */
            if (end - start < 2) FAIL("a story without a kind");
            if (depth || end - start - 1 != sizeof PACK_KIND - 1 || memcmp(body + start + 1, PACK_KIND, end - start - 1))
                for (size_t i = start + 1; i < end; i++)
                    if (!is_kind_char((uint8_t)body[i])) FAIL("a story kind the reference checks");
            int64_t kind = sk_intern(&r->kinds, start + 1, end - start - 1);
            if (kind < 0) goto done;
            owner = depth ? stack[depth - 1] : -1;
            if (sk_put_int64(&a[SK_OPENS], (int64_t)line) < 0 || sk_put_int64(&a[SK_N_DEPTH], (int64_t)depth) < 0 ||
                sk_put_int64(&a[SK_N_KIND], kind) < 0)
                goto done;
            if (depth == stack_capacity) {
                int64_t *grown = sk_realloc(stack, 2 * stack_capacity * sizeof(int64_t));
                if (!grown) goto done;
                stack = grown;
                stack_capacity *= 2;
            }
            stack[depth++] = nodes++;
        } else if (first == ')') {
            if (!depth) FAIL("a story closes that was not open");
            /* a close names the story it closes: the record prints it from the open line's kind */
            int64_t kind = sk_intern(&r->kinds, start + 1, end - start - 1), opened;
            if (kind < 0) goto done;
            memcpy(&opened, a[SK_N_KIND].data + (size_t)stack[depth - 1] * sizeof opened, sizeof opened);
            if (kind != opened) FAIL("a story closes under another kind");
            depth--;
            if (sk_put_int64(&a[SK_CLOSES], (int64_t)line) < 0 || sk_put_int64(&a[SK_CLOSED], stack[depth]) < 0)
                goto done;
        } else {
            if (!depth) FAIL("text outside any story");
            owner = stack[depth - 1];
            is_content = 1;
            const char *equals = memchr(body + start, '=', end - start);
            if (equals) {
                size_t value = (size_t)(equals - body) + 1, width = 1;
                while (value < end && body[value] == ' ') value++;
                for (const char *p = body + value; (p = memchr(p, ' ', (size_t)(body + end - p))); p++) width++;
                int64_t prefix = sk_intern(&r->prefixes, start, value - start);
                if (prefix < 0 || sk_put_int64(&a[SK_E_LINE], (int64_t)line) < 0 ||
                    sk_put_int64(&a[SK_E_PREFIX], prefix) < 0 || sk_put_int64(&a[SK_E_START], (int64_t)value) < 0 ||
                    sk_put_int64(&a[SK_E_END], (int64_t)end) < 0 || sk_put_int64(&a[SK_E_WIDTH], (int64_t)width) < 0)
                    goto done;
            }
        }
        if (sk_put_int64(&a[SK_L_START], (int64_t)start) < 0 || sk_put_int64(&a[SK_L_END], (int64_t)end) < 0 ||
            sk_put_int64(&a[SK_L_OWNER], owner) < 0 || sk_put(&r->content, &is_content, 1) < 0)
            goto done;
        if (!nl) break;
        start = end + 1;
    }
    if (depth) FAIL("a story is not closed");
    status = SK_OK;
done:
    sk_free(stack);
    if (status != SK_OK) sk_scan_free(r);
    return status;
}

/* ---- typing a value column ------------------------------------------------------------- */

void sk_typed_free(sk_typed *t) {
    sk_free(t->numbers);
    sk_free(t->codes);
    sk_free(t->bad);
    t->numbers = NULL;
    t->codes = t->bad = NULL;
}

/* The tokens of a column's values in order: each value body[starts[v]:ends[v]] holds `width`
 * space-separated tokens, its last token running to the value's end. */
typedef struct {
    const char *body;
    const int64_t *starts, *ends;
    size_t values, width, v, k, position;
} token_walk;

static token_walk walk_tokens(const char *body, const int64_t *starts, const int64_t *ends, size_t values,
                              size_t width) {
    token_walk w = {body, starts, ends, values, width, 0, 0, values ? (size_t)starts[0] : 0};
    return w;
}

/* The next token in *s, *n: 1; 0 after the last; SK_INVALID for a value with too few tokens. */
static int next_token(token_walk *w, const char **s, size_t *n) {
    if (w->v == w->values) return 0;
    size_t end = (size_t)w->ends[w->v];
    if (w->position > end) return SK_INVALID;
    const char *space = w->k + 1 == w->width ? NULL : memchr(w->body + w->position, ' ', end - w->position);
    size_t stop = space ? (size_t)(space - w->body) : end;
    *s = w->body + w->position;
    *n = stop - w->position;
    w->position = stop + 1;
    if (++w->k == w->width) {
        w->k = 0;
        if (++w->v < w->values) w->position = (size_t)w->starts[w->v];
    }
    return 1;
}

int sk_type_column(const char *body, size_t size, const int64_t *starts, const int64_t *ends, size_t values,
                   size_t width, sk_typed *out, const char **why) {
    memset(out, 0, sizeof *out);
    int status = SK_NOMEM;
    if (width == 0) FAIL("a column's width must be at least 1");
    /* width tokens need width - 1 spaces of the text; no product below can overflow */
    if (width - 1 > size) FAIL("a value holds fewer tokens than its width");
    if (values > (SIZE_MAX / 16) / width) FAIL("a column too large to type");
    for (size_t v = 0; v < values; v++)
        if (starts[v] < 0 || starts[v] > ends[v] || (uint64_t)ends[v] > size) FAIL("a value lies outside the text");
    size_t count = values * width;
    out->count = count;
    out->numbers = sk_malloc(count * 8 + 1);
    out->codes = sk_malloc(count + 1);
    out->bad = sk_calloc(count + 1, 1);
    if (!out->numbers || !out->codes || !out->bad) goto done;
    const char *s;
    size_t n, token = 0;
    int found, fractional = -1;
    /* Pass 1: integers, when the first token allows them (as Column.fill decides); int()
     * refuses every token with a point or an exponent, so one makes the column floats. */
    token_walk w = walk_tokens(body, starts, ends, values, width);
    while ((found = next_token(&w, &s, &n)) > 0) {
        if (fractional < 0) fractional = sk_is_fractional(s, n);
        if (fractional || sk_is_fractional(s, n)) break;
        if (!sk_canonical_int(s, n, (int64_t *)out->numbers + token++)) {
            status = SK_DECLINED;
            goto done;
        }
    }
    if (found < 0) FAIL("a value holds fewer tokens than its width");
    if (found == 0 && values) {
        out->type = 'i';
        status = SK_OK;
        goto done;
    }
    token = 0;
    double *numbers = out->numbers;
    w = walk_tokens(body, starts, ends, values, width);
    while ((found = next_token(&w, &s, &n)) > 0) {
        double x;
        if (!sk_parse_decimal(s, n, &x)) {
            status = SK_DECLINED;
            goto done;
        }
        int code = sk_format_code(s, n);
        numbers[token] = x;
        out->codes[token] = (unsigned char)code;
        out->bad[token++] = !sk_prints_back(s, n, x, code);
    }
    if (found < 0) FAIL("a value holds fewer tokens than its width");
    out->type = 'f';
    status = SK_OK;
done:
    if (status != SK_OK) sk_typed_free(out);
    return status;
}

/* ---- templates: each node's item sequence, interned ------------------------------------ */

int sk_intern_templates(const int32_t *items, size_t n_lines, const int64_t *owner, const int64_t *closed,
                        size_t n_closed, const int64_t *kind, size_t n_nodes, int64_t *node_template,
                        int32_t **grouped_out, sk_interner *distinct, const char **why) {
    int status = SK_NOMEM, interner_ready = 0;
    size_t *offsets = sk_calloc(n_nodes + 1, sizeof(size_t)), *fill = sk_calloc(n_nodes + 1, sizeof(size_t));
    int32_t *grouped = sk_malloc((n_lines + n_nodes + 1) * sizeof(int32_t));
    if (!offsets || !fill || !grouped) goto done;
    if (n_closed != n_nodes) FAIL("every node must close once");
    for (size_t line = 0; line < n_lines; line++) {
        if (owner[line] < -1 || owner[line] >= (int64_t)n_nodes) FAIL("a line names a node that does not exist");
        if (owner[line] >= 0) offsets[owner[line] + 1]++;
    }
    for (size_t node = 0; node < n_nodes; node++) {
        offsets[node + 1] += offsets[node] + 1; /* one slot for the kind */
        grouped[offsets[node]] = (int32_t)kind[node];
        fill[node] = offsets[node] + 1;
        node_template[node] = -1;
    }
    for (size_t line = 0; line < n_lines; line++)
        if (owner[line] >= 0) grouped[fill[owner[line]]++] = items[line];
    if (sk_interner_init(distinct, (const char *)grouped) < 0) goto done;
    interner_ready = 1;
    for (size_t k = 0; k < n_closed; k++) {
        int64_t node = closed[k];
        if (node < 0 || node >= (int64_t)n_nodes) FAIL("a closed story names a node that does not exist");
        if (node_template[node] >= 0) FAIL("a node closes twice");
        int64_t id = sk_intern(distinct, offsets[node] * 4, (offsets[node + 1] - offsets[node]) * 4);
        if (id < 0) goto done;
        node_template[node] = id;
    }
    status = SK_OK;
done:
    sk_free(offsets);
    sk_free(fill);
    if (status == SK_OK) {
        *grouped_out = grouped;
    } else {
        sk_free(grouped);
        if (interner_ready) sk_interner_free(distinct);
    }
    return status;
}
