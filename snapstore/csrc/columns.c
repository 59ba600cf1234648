/* Value columns read back from a record: intpack's integer arrays undone and a column's
 * 8-byte components put back in token order, as codec.intpack.unpack_ints and Column.unpack
 * do with numpy. */
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
