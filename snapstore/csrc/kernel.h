/* snapstore's hot loops in plain C (no Python.h): the interface of the algorithm files,
 * which _kernel.c wraps for Python as astropy's cparser.pyx wraps tokenizer.c.
 *
 * Every function checks the sizes it is given and reports a failure by its return value:
 * SK_NOMEM when an allocation fails, SK_INVALID with a static message in *why for input
 * that breaks the function's contract.  Nothing here depends on the process locale.
 */
#ifndef SNAPSTORE_KERNEL_H
#define SNAPSTORE_KERNEL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { SK_OK = 0, SK_NOMEM = -1, SK_INVALID = -2, SK_DECLINED = -3 };

/* The allocator every file here uses: the C library's unless the host sets another (the
 * Python module sets PyMem_Raw*, so its tests can fail allocations one at a time). */
extern void *(*sk_malloc)(size_t size);
extern void *(*sk_calloc)(size_t count, size_t size);
extern void *(*sk_realloc)(void *data, size_t size);
extern void (*sk_free)(void *data);

/* ---- growable buffers (malloc) -------------------------------------------------------- */
typedef struct {
    char *data;
    size_t size, capacity;
} sk_buffer;

int sk_grow(sk_buffer *b, size_t extra);
void sk_buffer_free(sk_buffer *b);

/* Inline: the scan and the printer call these once a line or a token. */
static inline int sk_reserve(sk_buffer *b, size_t extra) {
    return extra <= b->capacity - b->size ? SK_OK : sk_grow(b, extra);
}

static inline int sk_put(sk_buffer *b, const void *data, size_t n) {
    if (sk_reserve(b, n) < 0) return SK_NOMEM;
    if (n) memcpy(b->data + b->size, data, n);
    b->size += n;
    return SK_OK;
}

static inline int sk_put_int64(sk_buffer *b, int64_t value) { return sk_put(b, &value, sizeof value); }

/* ---- numbers (numbers.c) -------------------------------------------------------------- */
/* The longest text sk_format_number writes: "%.127f" of the largest double is 438 bytes. */
#define SK_NUMBER_MAX 512

int sk_numbers_init(void);
/* x printed as Python's "%.{d}f" (code < 128) or "%.{d}e" (d = code - 128); the length, or -1. */
int sk_format_number(double x, int code, char out[SK_NUMBER_MAX]);
int sk_format_int(int64_t value, char out[24]);
/* Does x print back as this token with this code?  1 yes, 0 no. */
int sk_prints_back(const char *token, size_t n, double x, int code);
/* A plain integer as Python's str(int) prints it, within int64; 0 otherwise. */
int sk_canonical_int(const char *s, size_t n, int64_t *out);
int sk_is_fractional(const char *s, size_t n);
/* Python's numbers.format_codes() for one token. */
int sk_format_code(const char *s, size_t n);
/* The finite number of a decimal token, as Python's float() reads it; 0 when this
 * cannot be decided here (hex, inf, nan, too long) and Python must decide. */
int sk_parse_decimal(const char *s, size_t n, double *out);

/* ---- interning byte slices in first-appearance order (intern.c) ---------------------- */
typedef struct {
    const char *base;
    size_t *start, *length; /* per distinct slice */
    size_t count, capacity, slots_mask;
    size_t *slots; /* index + 1, 0 for empty */
} sk_interner;

void sk_hash_seed(const uint8_t key[16]);
int sk_interner_init(sk_interner *t, const char *base);
void sk_interner_free(sk_interner *t);
/* The id of base[start:start+n], a new one if it was not seen before; SK_NOMEM on failure. */
int64_t sk_intern(sk_interner *t, size_t start, size_t n);

/* ---- stories (stories.c) ------------------------------------------------------------- */
#define SK_MAX_SPLIT_DEPTH 256
/* The kinds a root not finished yet has open where a scan of it stopped, so that the next
 * call scans only the text that follows (a root of megabytes arrives in thousands of reads). */
typedef struct {
    size_t depth;
    const uint8_t *kind[SK_MAX_SPLIT_DEPTH]; /* each open kind's name, where it was read */
    size_t length[SK_MAX_SPLIT_DEPTH];
} sk_split_state;

/* The end offsets of the whole, regular root stories from `start` (int64 in *ends), where
 * that stops, and whether it stopped at a root the text does not finish; then *state holds
 * that root's open kinds (pointing into data, or into resume's names). With `resume`, the
 * text from `start` goes on with a root whose open kinds it gives: *stop stays at `start`
 * until that root has ended. */
int sk_split_roots(const uint8_t *data, size_t size, size_t start, const sk_split_state *resume,
                   sk_buffer *ends, size_t *stop, int *unfinished, sk_split_state *state, const char **why);

enum { SK_L_START, SK_L_END, SK_L_OWNER, SK_OPENS, SK_CLOSES, SK_CLOSED, SK_N_DEPTH, SK_N_KIND, SK_E_LINE,
       SK_E_PREFIX, SK_E_START, SK_E_END, SK_E_WIDTH, SK_SCAN_ARRAYS };

typedef struct {
    sk_buffer arrays[SK_SCAN_ARRAYS]; /* int64 each */
    sk_buffer content;                /* one byte per line */
    sk_interner kinds, prefixes;
    int ready;
} sk_scan_result;

int sk_scan(const char *body, size_t size, sk_scan_result *r, const char **why);
void sk_scan_free(sk_scan_result *r);

/* Typed tokens of a value column.  type 'i': ints; 'f': floats, codes and bad (one byte
 * each, 1 for a token that does not print back); SK_DECLINED when Python must type it. */
typedef struct {
    char type;
    void *numbers; /* int64 or double, count entries */
    unsigned char *codes, *bad;
    size_t count;
} sk_typed;

int sk_type_column(const char *body, size_t size, const int64_t *starts, const int64_t *ends, size_t values,
                   size_t width, sk_typed *out, const char **why);
void sk_typed_free(sk_typed *t);

/* Each node's items (int32, its lines' codes in line order) keyed with its kind, numbered
 * in the order the nodes close.  node_template gets n_nodes ids; *distinct the interner
 * over `grouped` whose slices are [kind, items...]. */
int sk_intern_templates(const int32_t *items, size_t n_lines, const int64_t *owner, const int64_t *closed,
                        size_t n_closed, const int64_t *kind, size_t n_nodes, int64_t *node_template,
                        int32_t **grouped, sk_interner *distinct, const char **why);

/* ---- printing a record back (render.c) ------------------------------------------------- */
typedef struct {
    const char **text;
    size_t *length, count;
} sk_texts;

enum { SK_STRINGS = 0, SK_INTS = 1, SK_FLOATS = 2 };

typedef struct {
    int type;
    size_t width, occurrences;
    const void *numbers;         /* occurrences * width int64 or double */
    const unsigned char *codes;  /* floats: one per number */
    sk_texts strings;            /* strings: one per occurrence */
    const int64_t *override_at;  /* strictly increasing occurrences below `occurrences` */
    sk_texts override_text;
    size_t next, override_next;
} sk_column;

typedef struct {
    const int64_t *node_template;
    size_t n_nodes;
    sk_texts kinds;               /* per template */
    const int32_t *const *items;  /* per template: -1 a sub-story, -2 a free line, else an entry id */
    const size_t *n_items;
    const int64_t *entry_column;  /* per entry id */
    sk_texts entry_prefix;
    size_t n_entries;
    sk_column *columns;
    size_t n_columns;
    sk_texts lines;
    int final_newline;
} sk_layout;

/* Check a column's arrays against its declared sizes (sk_render trusts none it has not). */
int sk_column_check(const sk_column *c, size_t numbers_bytes, size_t codes_bytes, const char **why);
int sk_render(sk_layout *layout, sk_buffer *out, const char **why);

/* ---- value columns read back (columns.c) ---------------------------------------------- */
/* count integers of `itemsize` bytes (little-endian, byte-shuffled: all first bytes, then all
 * second bytes...) as int64; `deltas`: each the sum of those up to it, wrapping as int64. */
void sk_unpack_ints(const unsigned char *data, size_t count, size_t itemsize, int is_signed, int deltas,
                    int64_t *out);
/* count 8-byte values stored component by component (width runs of count/width) put in
 * token order: tokens[t * width + k] = components[k * (count / width) + t].  (For one-byte
 * values that is sk_unshuffle.) */
void sk_to_tokens(const unsigned char *components, size_t count, size_t width, unsigned char *tokens);

/* The integer types intpack stores in, narrowest first, by numpy's name. */
typedef struct {
    const char *name;
    size_t size;
    int is_signed;
} sk_int_type;
#define SK_N_INT_TYPES 7
extern const sk_int_type SK_INT_TYPES[SK_N_INT_TYPES];

/* ---- value columns packed (columns.c), as codec.intpack and codec.numbers do with numpy -- */
/* intpack.pack_ints's choice: mode 'c' (every value `constant`, or none), else 'd' (deltas)
 * or 'r' (the values) in SK_INT_TYPES[type]. */
typedef struct {
    char mode;
    int64_t constant;
    size_t type;
} sk_int_plan;

void sk_plan_ints(const int64_t *values, size_t count, sk_int_plan *plan);
/* The planned values or deltas (not 'c'), count * SK_INT_TYPES[type].size bytes, byte-shuffled. */
void sk_pack_ints(const int64_t *values, size_t count, const sk_int_plan *plan, unsigned char *out);
/* count values of `width` bytes byte-shuffled: byte b of value k at out[b * count + k]. */
void sk_shuffle(const unsigned char *in, size_t count, size_t width, unsigned char *out);
/* numbers.as_whole: 1 and the int64s when every value is a whole number float64 holds
 * exactly (not -0.0), else 0. */
int sk_whole(const double *values, size_t count, int64_t *out);
/* numbers._powers_of_two: 1 and each value's signed exponent biased by `bias` (0 for 0.0)
 * when every one is 0.0 or a signed power of two, else 0. */
int sk_powers_of_two(const double *values, size_t count, int64_t bias, int64_t *out);
/* precision.decimal_exponents of one value: the largest e in -323..308 with |x| >= the double
 * nearest 10^e (-324 below 1e-323), 0 for 0, the infinities and NaN. */
int sk_decimal_exponent(double x);
/* Format 4 stores an exponent-style code as code + this (precision.EXPONENT_STORED). */
#define SK_EXPONENT_STORED 1024
/* precision.stored_codes of one token: its format code stored against what its value x predicts in a
 * column stored as `storage` ('f', 'i', 'h', 'p' or 'd'). */
int64_t sk_stored_code(int code, double x, char storage);
/* precision.codes_from_stored of one token: 1 and *code, or 0 when `stored` gives no code 0..255. */
int sk_code_from_stored(int64_t stored, double x, char storage, int64_t *code);

/* ---- arrays (stars.c) ------------------------------------------------------------------ */
int sk_unshuffle(const unsigned char *in, size_t size, size_t width, unsigned char *out, const char **why);
/* Leaf stars (id, mass, pos[3], vel[3]: 64 bytes each) sorted by id; *count of them. */
int sk_stars(const int64_t *parent, const double *index, const double *name, const double *mass,
             const double *pos, const double *vel, size_t n, unsigned char **out, size_t *count,
             const char **why);

#endif
