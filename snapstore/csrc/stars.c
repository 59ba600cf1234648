/* Arrays straight from a record: undoing intpack's byte shuffle, and the leaf stars of a
 * snapshot, absolute and sorted by id, as codec.stars.star_table_reference computes them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

int sk_unshuffle(const unsigned char *in, size_t size, size_t width, unsigned char *out, const char **why) {
    if (width < 1 || size % width) {
        *why = "shuffled data is not a whole number of values";
        return SK_INVALID;
    }
    size_t count = size / width;
    for (size_t b = 0; b < width; b++) {
        const unsigned char *plane = in + b * count;
        for (size_t k = 0; k < count; k++) out[k * width + b] = plane[k];
    }
    return SK_OK;
}

typedef struct {
    int64_t id;
    size_t row;
} star;

static int by_id_then_row(const void *a, const void *b) {
    const star *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* Sort stars by id, ties in row order.  Starlab numbers its stars 1..N, so ids in a range
 * of a few times the count take a counting sort (stable, linear); others take qsort. */
static int sort_ids(star *stars, size_t count) {
    if (count < 2) return SK_OK;
    int64_t low = stars[0].id, high = stars[0].id;
    for (size_t k = 1; k < count; k++) {
        if (stars[k].id < low) low = stars[k].id;
        if (stars[k].id > high) high = stars[k].id;
    }
    if ((uint64_t)high - (uint64_t)low >= (uint64_t)(4 * count + 64)) {
        qsort(stars, count, sizeof(star), by_id_then_row);
        return SK_OK;
    }
    size_t range = (size_t)((uint64_t)high - (uint64_t)low) + 1;
    size_t *start = sk_calloc(range + 1, sizeof(size_t));
    star *sorted = sk_malloc(count * sizeof(star));
    if (!start || !sorted) {
        sk_free(start);
        sk_free(sorted);
        return SK_NOMEM;
    }
    for (size_t k = 0; k < count; k++) start[(uint64_t)stars[k].id - (uint64_t)low + 1]++;
    for (size_t k = 0; k < range; k++) start[k + 1] += start[k];
    for (size_t k = 0; k < count; k++) sorted[start[(uint64_t)stars[k].id - (uint64_t)low]++] = stars[k];
    memcpy(stars, sorted, count * sizeof(star));
    sk_free(start);
    sk_free(sorted);
    return SK_OK;
}

/* A relative value plus its parent's absolute one; a NaN sum is the quiet NaN: which of two
 * NaN operands the hardware passes on depends on the order the compiler picked. */
static double quiet_sum(double relative, double above) {
    double sum = relative + above;
    return isnan(sum) ? NAN : sum;
}

int sk_stars(const int64_t *parent, const double *index, const double *name, const double *mass,
             const double *pos, const double *vel, size_t n, unsigned char **out, size_t *count_out,
             const char **why) {
    int status = SK_NOMEM;
    size_t rows = n ? n : 1;
    double *absolute = NULL;
    char *has_child = NULL;
    star *leaves = NULL;
    *out = NULL;
    if (n > SIZE_MAX / 64) return SK_NOMEM;
    absolute = sk_malloc(6 * rows * sizeof(double));
    has_child = sk_calloc(rows, 1);
    leaves = sk_malloc(rows * sizeof(star));
    if (!absolute || !has_child || !leaves) goto done;
    for (size_t row = 0; row < n; row++) {
        int64_t up = parent[row];
        if (up < -1 || up >= (int64_t)row) {
            *why = "a star row's parent does not come before it";
            status = SK_INVALID;
            goto done;
        }
        for (int c = 0; c < 3; c++) {
            double p = pos[c * n + row], v = vel[c * n + row];
            absolute[6 * row + c] = up < 0 ? p : quiet_sum(p, absolute[6 * up + c]);
            absolute[6 * row + 3 + c] = up < 0 ? v : quiet_sum(v, absolute[6 * up + 3 + c]);
        }
        if (up >= 0) has_child[up] = 1;
    }
    size_t count = 0;
    for (size_t row = 0; row < n; row++) {
        if (has_child[row]) continue;
        double id = index[row];
        if (isnan(id) && name) id = name[row];
        int whole = isfinite(id) && id == trunc(id) && fabs(id) < 4611686018427387904.0; /* 2^62 */
        leaves[count].id = whole ? (int64_t)id : -1;
        leaves[count++].row = row;
    }
    if (sort_ids(leaves, count) < 0) goto done;
    *out = sk_malloc(count * 64 + 1);
    if (!*out) goto done;
    for (size_t k = 0; k < count; k++) {
        double fields[7];
        size_t row = leaves[k].row;
        fields[0] = mass[row];
        memcpy(fields + 1, absolute + 6 * row, 6 * sizeof(double));
        memcpy(*out + 64 * k, &leaves[k].id, 8);
        memcpy(*out + 64 * k + 8, fields, 56);
    }
    *count_out = count;
    status = SK_OK;
done:
    sk_free(absolute);
    sk_free(has_child);
    sk_free(leaves);
    return status;
}
