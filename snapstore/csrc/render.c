/* Printing a record's layout back to its exact text, as codec.render.iter_decoded_lines
 * does.  The caller hands in a layout that codec/validate.py has checked; this file checks
 * again every index and count it follows, so no record, however forged, reads or writes
 * outside the arrays it was given. */
#include <string.h>

#include "kernel.h"

int sk_column_check(const sk_column *c, size_t numbers_bytes, size_t codes_bytes, const char **why) {
    if (c->type == SK_STRINGS) {
        if (c->strings.count != c->occurrences) goto sizes;
    } else {
        if (c->type != SK_INTS && c->type != SK_FLOATS) {
            *why = "a column of an unknown type";
            return SK_INVALID;
        }
        if (c->width == 0 || numbers_bytes % 8 || (numbers_bytes / 8) % c->width ||
            (numbers_bytes / 8) / c->width != c->occurrences)
            goto sizes;
        if (c->type == SK_FLOATS && codes_bytes != numbers_bytes / 8) {
            *why = "a float column needs one code per value";
            return SK_INVALID;
        }
    }
    if (c->override_text.count > c->occurrences) goto overrides;
    for (size_t k = 0; k < c->override_text.count; k++) {
        int64_t at = c->override_at[k];
        if (at < 0 || (uint64_t)at >= c->occurrences || (k && at <= c->override_at[k - 1])) goto overrides;
    }
    return SK_OK;
sizes:
    *why = "a column's arrays do not hold its occurrences";
    return SK_INVALID;
overrides:
    *why = "a column's overrides are not distinct occurrences it holds";
    return SK_INVALID;
}

static int put_text(sk_buffer *out, const sk_texts *texts, size_t index) {
    return sk_put(out, texts->text[index], texts->length[index]);
}

static int put_value(sk_buffer *out, sk_column *c, const char **why) {
    size_t occurrence = c->next++;
    if (occurrence >= c->occurrences) {
        *why = "a column holds fewer values than its template uses";
        return SK_INVALID;
    }
    if (c->override_next < c->override_text.count && (uint64_t)c->override_at[c->override_next] == occurrence)
        return put_text(out, &c->override_text, c->override_next++);
    if (c->type == SK_STRINGS) return put_text(out, &c->strings, occurrence);
    size_t first = occurrence * c->width; /* < occurrences * width, which the column's array holds */
    for (size_t k = 0; k < c->width; k++) {
        /* one token's worst case at a time: no product of a width read from the record */
        if (sk_reserve(out, SK_NUMBER_MAX + 1) < 0) return SK_NOMEM;
        if (k) out->data[out->size++] = ' ';
        int length;
        if (c->type == SK_INTS) {
            length = sk_format_int(((const int64_t *)c->numbers)[first + k], out->data + out->size);
        } else {
            length = sk_format_number(((const double *)c->numbers)[first + k], c->codes[first + k],
                                      out->data + out->size);
            if (length < 0) {
                *why = "a number cannot be printed with its format code";
                return SK_INVALID;
            }
        }
        out->size += (size_t)length;
    }
    return SK_OK;
}

static int open_line(sk_buffer *out, const sk_texts *kinds, size_t template) {
    if (sk_put(out, "(", 1) < 0 || put_text(out, kinds, template) < 0 || sk_put(out, "\n", 1) < 0) return SK_NOMEM;
    return SK_OK;
}

typedef struct {
    size_t template, position;
} frame;

int sk_render(sk_layout *L, sk_buffer *out, const char **why) {
    int status = SK_NOMEM;
    sk_buffer stack = {0};
    size_t depth = 0, next_line = 0, next_node = 0, position = 0, template;
    if (L->n_nodes == 0) {
        *why = "a record with no story";
        return SK_INVALID;
    }
    for (size_t i = 0; i < L->n_columns; i++) L->columns[i].next = L->columns[i].override_next = 0;
#define TAKE_TEMPLATE()                                                                    \
    do {                                                                                   \
        int64_t t = L->node_template[next_node++];                                         \
        if (t < 0 || (uint64_t)t >= L->kinds.count) {                                      \
            *why = "a node names a template that does not exist";                          \
            status = SK_INVALID;                                                           \
            goto done;                                                                     \
        }                                                                                  \
        template = (size_t)t;                                                              \
        position = 0;                                                                      \
        if (open_line(out, &L->kinds, template) < 0) goto done;                            \
    } while (0)
    TAKE_TEMPLATE();
    for (;;) {
        if (position < L->n_items[template]) {
            int32_t item = L->items[template][position++];
            if (item == -1) {
                if (next_node >= L->n_nodes) {
                    *why = "a template names more sub-stories than the record holds";
                    status = SK_INVALID;
                    goto done;
                }
                frame saved = {template, position};
                if (sk_put(&stack, &saved, sizeof saved) < 0) goto done;
                depth++;
                TAKE_TEMPLATE();
            } else if (item == -2) {
                if (next_line >= L->lines.count) {
                    *why = "a template names more text lines than the record holds";
                    status = SK_INVALID;
                    goto done;
                }
                if (put_text(out, &L->lines, next_line++) < 0 || sk_put(out, "\n", 1) < 0) goto done;
            } else {
                if (item < 0 || (size_t)item >= L->n_entries || L->entry_column[item] < 0 ||
                    (uint64_t)L->entry_column[item] >= L->n_columns) {
                    *why = "a template names an entry that does not exist";
                    status = SK_INVALID;
                    goto done;
                }
                if (put_text(out, &L->entry_prefix, (size_t)item) < 0) goto done;
                int put = put_value(out, &L->columns[L->entry_column[item]], why);
                if (put < 0) {
                    status = put;
                    goto done;
                }
                if (sk_put(out, "\n", 1) < 0) goto done;
            }
        } else {
            if (sk_put(out, ")", 1) < 0 || put_text(out, &L->kinds, template) < 0 || sk_put(out, "\n", 1) < 0)
                goto done;
            if (!depth) break;
            depth--;
            frame saved;
            memcpy(&saved, stack.data + depth * sizeof saved, sizeof saved);
            stack.size -= sizeof saved;
            template = saved.template;
            position = saved.position;
        }
    }
    if (!L->final_newline) out->size--; /* the last ")kind\n" is always there */
    status = SK_OK;
done:
    sk_buffer_free(&stack);
    return status;
}
