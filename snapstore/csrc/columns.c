/* Value columns read back from a record: intpack's integer arrays undone and a column's
 * 8-byte components put back in token order, as codec.intpack.unpack_ints and Column.unpack
 * do with numpy. */
#include <math.h>

#include "kernel.h"

void sk_unpack_ints(const unsigned char *data, size_t count, size_t itemsize, int is_signed, int deltas,
                    int64_t *out) {
    uint64_t sum = 0;
    unsigned bits = (unsigned)(8 * itemsize);
    for (size_t k = 0; k < count; k++) {
        uint64_t value = 0;
        for (size_t b = 0; b < itemsize; b++) value |= (uint64_t)data[b * count + k] << (8 * b);
        if (is_signed && bits < 64 && (value >> (bits - 1)) & 1) value |= ~(uint64_t)0 << bits;
        sum = deltas ? sum + value : value; /* numpy's int64 cumsum wraps the same way */
        memcpy(&out[k], &sum, 8);
    }
}

void sk_to_tokens(const unsigned char *components, size_t count, size_t width, unsigned char *tokens) {
    size_t per_component = width ? count / width : 0;
    for (size_t k = 0; k < width; k++)
        for (size_t t = 0; t < per_component; t++)
            memcpy(tokens + 8 * (t * width + k), components + 8 * (k * per_component + t), 8);
}

/* Value columns packed for a record: intpack.pack_ints and pack_floats, numbers.as_whole and
 * _powers_of_two, which the encoder calls for every column. */
const sk_int_type SK_INT_TYPES[SK_N_INT_TYPES] = {{"|u1", 1, 0}, {"|i1", 1, 1}, {"<u2", 2, 0}, {"<i2", 2, 1},
                                                  {"<u4", 4, 0}, {"<i4", 4, 1}, {"<i8", 8, 1}};

static size_t narrowest(int64_t low, int64_t high) {
    for (size_t type = 0; type + 1 < SK_N_INT_TYPES; type++) {
        unsigned bits = (unsigned)(8 * SK_INT_TYPES[type].size);
        int64_t smallest = SK_INT_TYPES[type].is_signed ? -((int64_t)1 << (bits - 1)) : 0;
        int64_t largest = SK_INT_TYPES[type].is_signed ? ((int64_t)1 << (bits - 1)) - 1 : ((int64_t)1 << bits) - 1;
        if (smallest <= low && high <= largest) return type;
    }
    return SK_N_INT_TYPES - 1;
}

/* values[k] - values[k - 1] (values[0] for k = 0), wrapping as numpy's int64 subtraction does. */
static int64_t delta_at(const int64_t *values, size_t k) {
    if (!k) return values[0];
    uint64_t difference = (uint64_t)values[k] - (uint64_t)values[k - 1];
    int64_t out;
    memcpy(&out, &difference, 8);
    return out;
}

void sk_plan_ints(const int64_t *values, size_t count, sk_int_plan *plan) {
    plan->mode = 'c';
    plan->constant = count ? values[0] : 0;
    plan->type = SK_N_INT_TYPES - 1;
    if (count <= 1) return;
    int64_t low = values[0], high = values[0], delta_low = values[0], delta_high = values[0];
    for (size_t k = 1; k < count; k++) {
        if (values[k] < low) low = values[k];
        if (values[k] > high) high = values[k];
        int64_t delta = delta_at(values, k);
        if (delta < delta_low) delta_low = delta;
        if (delta > delta_high) delta_high = delta;
    }
    if (low == high) return;
    /* Both spans are exact as uint64: the reference compares them as Python integers. */
    int deltas = (uint64_t)delta_high - (uint64_t)delta_low < (uint64_t)high - (uint64_t)low;
    plan->mode = deltas ? 'd' : 'r';
    plan->type = deltas ? narrowest(delta_low, delta_high) : narrowest(low, high);
}

void sk_pack_ints(const int64_t *values, size_t count, const sk_int_plan *plan, unsigned char *out) {
    size_t size = SK_INT_TYPES[plan->type].size;
    for (size_t k = 0; k < count; k++) {
        uint64_t value = (uint64_t)(plan->mode == 'd' ? delta_at(values, k) : values[k]);
        for (size_t b = 0; b < size; b++) out[b * count + k] = (unsigned char)(value >> (8 * b));
    }
}

void sk_shuffle(const unsigned char *in, size_t count, size_t width, unsigned char *out) {
    for (size_t k = 0; k < count; k++)
        for (size_t b = 0; b < width; b++) out[b * count + k] = in[k * width + b];
}

int sk_whole(const double *values, size_t count, int64_t *out) {
    for (size_t k = 0; k < count; k++) {
        double x = values[k];
        /* 2^53: every integer below it is exact in float64; NaN fails the comparison */
        if (!(fabs(x) < 9007199254740992.0) || trunc(x) != x || (x == 0 && signbit(x))) return 0;
        out[k] = (int64_t)x;
    }
    return 1;
}

int sk_powers_of_two(const double *values, size_t count, int64_t bias, int64_t *out) {
    for (size_t k = 0; k < count; k++) {
        double x = values[k];
        if (x == 0) {
            if (signbit(x)) return 0;
            out[k] = 0;
            continue;
        }
        int exponent = 0;
        double mantissa = frexp(x, &exponent); /* NaN and inf give themselves: not 0.5 */
        if (fabs(mantissa) != 0.5) return 0;
        out[k] = (mantissa < 0 ? -1 : 1) * ((int64_t)exponent + bias);
    }
    return 1;
}
