/* Interning byte slices in first-appearance order, and the buffers the kernel grows.
 *
 * Entry keys come from the stories being ingested, so an attacker picks them: the hash is
 * SipHash-1-3 (what CPython uses for str) under a key drawn at start-up, so keys cannot be
 * chosen to collide, and the table grows at half load so probe runs stay short.
 */
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

/* ---- allocation and buffers ------------------------------------------------------------ */

void *(*sk_malloc)(size_t) = malloc;
void *(*sk_calloc)(size_t, size_t) = calloc;
void *(*sk_realloc)(void *, size_t) = realloc;
void (*sk_free)(void *) = free;

int sk_grow(sk_buffer *b, size_t extra) {
    if (extra > SIZE_MAX / 2 - b->size) return SK_NOMEM;
    size_t capacity = b->capacity ? b->capacity : 4096;
    while (capacity < b->size + extra) capacity *= 2;
    char *data = sk_realloc(b->data, capacity);
    if (!data) return SK_NOMEM;
    b->data = data;
    b->capacity = capacity;
    return SK_OK;
}

void sk_buffer_free(sk_buffer *b) {
    sk_free(b->data);
    b->data = NULL;
    b->size = b->capacity = 0;
}

/* ---- SipHash-1-3 --------------------------------------------------------------------- */

static uint64_t K0 = 0x736f6d6570736575ULL, K1 = 0x646f72616e646f6dULL;

void sk_hash_seed(const uint8_t key[16]) {
    memcpy(&K0, key, 8);
    memcpy(&K1, key + 8, 8);
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                           \
    do {                                                                                   \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                          \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                             \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                             \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                          \
    } while (0)

static uint64_t siphash13(const unsigned char *p, size_t n) {
    uint64_t v0 = K0 ^ 0x736f6d6570736575ULL, v1 = K1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = K0 ^ 0x6c7967656e657261ULL, v3 = K1 ^ 0x7465646279746573ULL;
    uint64_t b = (uint64_t)n << 56, m;
    size_t whole = n & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        memcpy(&m, p + i, 8);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < (n & 7); i++) b |= (uint64_t)p[whole + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the interner ---------------------------------------------------------------------- */

int sk_interner_init(sk_interner *t, const char *base) {
    memset(t, 0, sizeof *t);
    t->base = base;
    t->slots_mask = 255;
    t->capacity = 128;
    t->slots = sk_calloc(t->slots_mask + 1, sizeof(size_t));
    t->start = sk_malloc(t->capacity * sizeof(size_t));
    t->length = sk_malloc(t->capacity * sizeof(size_t));
    if (!t->slots || !t->start || !t->length) {
        sk_interner_free(t);
        return SK_NOMEM;
    }
    return SK_OK;
}

void sk_interner_free(sk_interner *t) {
    sk_free(t->slots);
    sk_free(t->start);
    sk_free(t->length);
    t->slots = t->start = t->length = NULL;
    t->count = t->capacity = 0;
}

static int interner_grow(sk_interner *t) {
    if (t->slots_mask > SIZE_MAX / 4 / sizeof(size_t)) return SK_NOMEM;
    size_t mask = t->slots_mask * 2 + 1, capacity = (mask + 1) / 2;
    size_t *slots = sk_calloc(mask + 1, sizeof(size_t));
    if (!slots) return SK_NOMEM;
    size_t *start = sk_realloc(t->start, capacity * sizeof(size_t));
    if (start) t->start = start;
    size_t *length = start ? sk_realloc(t->length, capacity * sizeof(size_t)) : NULL;
    if (length) t->length = length;
    if (!start || !length) {
        sk_free(slots);
        return SK_NOMEM;
    }
    for (size_t i = 0; i < t->count; i++) {
        size_t slot = siphash13((const unsigned char *)t->base + t->start[i], t->length[i]) & mask;
        while (slots[slot]) slot = (slot + 1) & mask;
        slots[slot] = i + 1;
    }
    sk_free(t->slots);
    t->slots = slots;
    t->slots_mask = mask;
    t->capacity = capacity;
    return SK_OK;
}

int64_t sk_intern(sk_interner *t, size_t start, size_t n) {
    if (2 * (t->count + 1) > t->slots_mask && interner_grow(t) < 0) return SK_NOMEM;
    const char *p = t->base + start;
    size_t slot = siphash13((const unsigned char *)p, n) & t->slots_mask;
    while (t->slots[slot]) {
        size_t i = t->slots[slot] - 1;
        if (t->length[i] == n && memcmp(t->base + t->start[i], p, n) == 0) return (int64_t)i;
        slot = (slot + 1) & t->slots_mask;
    }
    t->start[t->count] = start;
    t->length[t->count] = n;
    t->slots[slot] = t->count + 1;
    return (int64_t)t->count++;
}
