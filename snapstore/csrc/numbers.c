/* Exact decimal printing and parsing, as Python's "%.{d}f" / "%.{d}e" and float() do.
 *
 * The exactness proof.  Python prints a float x with "%.{d}f" or "%.{d}e" by rounding
 * its exact binary value to the nearest multiple of the last digit's unit 10^E (ties
 * to even).  A canonical token with digits M therefore prints back iff
 * |x - M*10^E| < 10^E / 2.  x = m*2^e and 10^E = 2^E*5^E, so after multiplying by
 * 5^-E (when E < 0) all three quantities are integers times powers of two; aligned on
 * the smallest power they are compared exactly in 128-bit integers.  A tie, or a number
 * too wide for 128 bits, is decided by snprintf instead (glibc rounds exactly, as
 * Python does), always in the "C" locale: the process's LC_NUMERIC (a notebook that
 * set de_DE) must not turn points into commas.
 */
#define _GNU_SOURCE
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

typedef unsigned __int128 u128;

#define MAX_POW5 54 /* 5^54 < 2^126 */
static u128 POW5[MAX_POW5 + 1];
#define MAX_POW10L 27 /* 10^27 = 2^27 * 5^27 and 5^27 < 2^64: exact in an x87 long double */
static long double POW10L[MAX_POW10L + 1];
static uint64_t POW10[20];
static locale_t C_LOCALE;
/* The double nearest 10^e for e from SK_TENS_LOWEST to SK_TENS_HIGHEST (strtod rounds correctly, as
 * Python's float() does: the reference's table in codec/precision.py is the same doubles). */
#define SK_TENS_LOWEST (-323)
#define SK_TENS_HIGHEST 308
static double TENS[SK_TENS_HIGHEST - SK_TENS_LOWEST + 1];
/* For each biased binary exponent of a normal double, the decimal exponent of its smallest magnitude (the
 * power of two): a magnitude below the next power of two has that one or the next. */
static int16_t DECIMAL_OF_BINARY[2047];
static int searched_exponent(double magnitude);

int sk_numbers_init(void) {
    POW5[0] = 1;
    for (int k = 1; k <= MAX_POW5; k++) POW5[k] = POW5[k - 1] * 5;
    POW10L[0] = 1.0L;
    for (int k = 1; k <= MAX_POW10L; k++) POW10L[k] = POW10L[k - 1] * 10.0L;
    POW10[0] = 1;
    for (int k = 1; k < 20; k++) POW10[k] = POW10[k - 1] * 10;
    if (!C_LOCALE) C_LOCALE = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (!C_LOCALE) return SK_NOMEM;
    for (int e = SK_TENS_LOWEST; e <= SK_TENS_HIGHEST; e++) {
        char text[8];
        snprintf(text, sizeof text, "1e%d", e);
        TENS[e - SK_TENS_LOWEST] = strtod_l(text, NULL, C_LOCALE);
    }
    for (int biased = 1; biased < 2047; biased++)
        DECIMAL_OF_BINARY[biased] = (int16_t)searched_exponent(ldexp(1.0, biased - 1023));
    return SK_OK;
}

/* precision.predicted_codes of one token of a column stored as `storage`. */
static int64_t predicted_code(double x, char storage) {
    if (storage == 'd') return 0;
    if (storage == 'p') {
        if (x == 0 || !isfinite(x)) return 0;
        int exponent;
        frexp(x, &exponent); /* x = 0.5 * 2^exponent: 1 - exponent decimals when below 1 */
        return exponent < 1 ? 1 - (int64_t)exponent : 0;
    }
    return -(int64_t)sk_decimal_exponent(x);
}

int64_t sk_stored_code(int code, double x, char storage) {
    return code >= 128 ? (int64_t)code + SK_EXPONENT_STORED : (int64_t)code - predicted_code(x, storage);
}

int sk_code_from_stored(int64_t stored, double x, char storage, int64_t *code) {
    if (stored >= 128 + SK_EXPONENT_STORED) {
        *code = stored - SK_EXPONENT_STORED;
        return *code <= 255;
    }
    if (stored < -(1 << 12) || stored > (1 << 12)) return 0; /* beyond any prediction: no overflow below */
    *code = stored + predicted_code(x, storage);
    return *code >= 0 && *code < 128;
}

/* sk_decimal_exponent of a finite nonzero magnitude, by estimate and the table. */
static int searched_exponent(double magnitude) {
    int binary;
    frexp(magnitude, &binary); /* magnitude in [2^(binary-1), 2^binary) */
    /* an estimate within one of the answer, then the table decides exactly */
    int e = (int)floor((binary - 1) * 0.30102999566398120);
    if (e < SK_TENS_LOWEST) e = SK_TENS_LOWEST;
    if (e > SK_TENS_HIGHEST) e = SK_TENS_HIGHEST;
    while (e < SK_TENS_HIGHEST && magnitude >= TENS[e + 1 - SK_TENS_LOWEST]) e++;
    while (e >= SK_TENS_LOWEST && magnitude < TENS[e - SK_TENS_LOWEST]) e--;
    return e;
}

int sk_decimal_exponent(double x) {
    double magnitude = fabs(x);
    uint64_t bits;
    memcpy(&bits, &magnitude, 8);
    int biased = (int)(bits >> 52);
    if (biased == 0 || biased == 2047) /* 0, subnormals, infinities and NaN */
        return magnitude > 0 && biased == 0 ? searched_exponent(magnitude) : 0;
    int e = DECIMAL_OF_BINARY[biased];
    return e < SK_TENS_HIGHEST && magnitude >= TENS[e + 1 - SK_TENS_LOWEST] ? e + 1 : e;
}

/* snprintf of one double in the C locale; the length, or -1 if it does not fit. */
static int c_snprintf(char *out, size_t capacity, int code, double x) {
    locale_t previous = uselocale(C_LOCALE);
    int length = snprintf(out, capacity, code >= 128 ? "%.*e" : "%.*f", code & 127, x);
    uselocale(previous);
    return length < 0 || (size_t)length >= capacity ? -1 : length;
}

static int bit_length(u128 v) {
    uint64_t high = (uint64_t)(v >> 64), low = (uint64_t)v;
    if (high) return 64 + (64 - __builtin_clzll(high));
    return low ? 64 - __builtin_clzll(low) : 0;
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

/* The canonical digits of a token printed with format code `code`: sign, M and E with
 * value M * 10^E.  0 when the token is not in the exact form such printing gives (the
 * caller then compares with snprintf), or has more than 19 digits. */
static int canonical(const char *s, size_t n, int code, int *negative, uint64_t *M, int *E) {
    size_t i = 0;
    int d = code & 127, exponent_style = code >= 128;
    uint64_t value = 0;
    int digits = 0;
    *negative = 0;
    if (i < n && s[i] == '-') {
        *negative = 1;
        i++;
    }
    size_t int_start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        if ((digits || s[i] != '0') && ++digits > 19) return 0;
        value = value * 10 + (uint64_t)(s[i] - '0');
        i++;
    }
    size_t int_digits = i - int_start;
    if (int_digits == 0) return 0;
    if (exponent_style ? int_digits != 1 : (int_digits > 1 && s[int_start] == '0')) return 0;
    if (d) {
        if (i >= n || s[i] != '.') return 0;
        i++;
        for (int k = 0; k < d; k++, i++) {
            if (i >= n || s[i] < '0' || s[i] > '9') return 0;
            if ((digits || s[i] != '0') && ++digits > 19) return 0;
            value = value * 10 + (uint64_t)(s[i] - '0');
        }
    }
    int exponent = 0;
    if (exponent_style) {
        if (i >= n || s[i] != 'e') return 0;
        i++;
        if (i >= n || (s[i] != '+' && s[i] != '-')) return 0;
        int sign = s[i] == '-' ? -1 : 1;
        i++;
        size_t exp_start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - exp_start < 5) exponent = exponent * 10 + (s[i++] - '0');
        size_t exp_digits = i - exp_start;
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

static int snprintf_equals(const char *token, size_t n, double x, int code) {
    char buffer[SK_NUMBER_MAX];
    int length = sk_format_number(x, code, buffer);
    return length >= 0 && (size_t)length == n && memcmp(buffer, token, n) == 0;
}

int sk_prints_back(const char *token, size_t n, double x, int code) {
    int negative, E;
    uint64_t M;
    if (isfinite(x) && canonical(token, n, code, &negative, &M, &E)) {
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

/* "00" "01" ... "99": the printer writes two digits per division (its hottest loop under perf). */
static const char DIGIT_PAIRS[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static int decimal_length(uint64_t M) {
    /* bits * 1233 / 4096 is log10(2) * bits rounded down: the length, or one less (0 for M = 0) */
    int guess = ((64 - __builtin_clzll(M | 1)) * 1233) >> 12;
    int n = guess + (M >= POW10[guess]);
    return n ? n : 1;
}

static int digits_of(uint64_t M, char *out) {
    int n = decimal_length(M);
    char *end = out + n;
    while (M >= 100) {
        unsigned pair = (unsigned)(M % 100);
        M /= 100;
        end -= 2;
        memcpy(end, DIGIT_PAIRS + 2 * pair, 2);
    }
    if (M >= 10) memcpy(end - 2, DIGIT_PAIRS + 2 * M, 2);
    else end[-1] = (char)('0' + M);
    return n;
}

int sk_format_int(int64_t value, char out[24]) {
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
        uint64_t candidate = guess + (uint64_t)deltas[k];
        int verdict = within_half_unit(x, candidate, E);
        if (verdict < 0) return 0;
        if (verdict) {
            *M = candidate;
            return 1;
        }
    }
    return 0;
}

static int fixed_style(double x, int d, char *out) {
    uint64_t M;
    if (!nearest_digits(x, -d, &M)) return -1;
    char digits[24];
    int n = digits_of(M, digits), length = 0;
    if (signbit(x)) out[length++] = '-';
    if (n <= d) {
        out[length++] = '0';
        if (d) {
            out[length++] = '.';
            memset(out + length, '0', (size_t)(d - n));
            length += d - n;
            memcpy(out + length, digits, (size_t)n);
            length += n;
        }
    } else {
        memcpy(out + length, digits, (size_t)(n - d));
        length += n - d;
        if (d) {
            out[length++] = '.';
            memcpy(out + length, digits + n - d, (size_t)d);
            length += d;
        }
    }
    return length;
}

static int exponent_style(double x, int d, char *out) {
    uint64_t M;
    int X = (int)floor(log10(fabs(x)));
    for (int attempt = 0; attempt < 3; attempt++) {
        if (!nearest_digits(x, X - d, &M)) return -1;
        if (M >= POW10[d + 1]) {
            X++;
            continue;
        }
        if (M < POW10[d]) {
            X--;
            continue;
        }
        if (M == POW10[d]) return -1; /* the rounding-up edge: leave it to snprintf */
        char digits[24];
        int length = 0;
        digits_of(M, digits);
        if (signbit(x)) out[length++] = '-';
        out[length++] = digits[0];
        if (d) {
            out[length++] = '.';
            memcpy(out + length, digits + 1, (size_t)d);
            length += d;
        }
        out[length++] = 'e';
        out[length++] = X < 0 ? '-' : '+';
        int magnitude = X < 0 ? -X : X;
        if (magnitude >= 100) out[length++] = (char)('0' + magnitude / 100);
        out[length++] = (char)('0' + (magnitude / 10) % 10);
        out[length++] = (char)('0' + magnitude % 10);
        return length;
    }
    return -1;
}

int sk_format_number(double x, int code, char out[SK_NUMBER_MAX]) {
    if (code < 0 || code > 255) return -1;
    int d = code & 127;
    if (isnan(x)) { /* Python prints every NaN, whatever its sign bit, as "nan" */
        memcpy(out, "nan", 3);
        return 3;
    }
    if (isfinite(x) && x != 0) {
        int length = -1;
        if (code < 128) length = fixed_style(x, d, out);
        else if (d <= 18) length = exponent_style(x, d, out); /* e-style digits must fit in 64 bits */
        if (length >= 0) return length;
    }
    return c_snprintf(out, SK_NUMBER_MAX, code, x);
}

int sk_is_fractional(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == '.' || s[i] == 'e' || s[i] == 'E') return 1;
    return 0;
}

int sk_canonical_int(const char *s, size_t n, int64_t *out) {
    size_t i = 0;
    int negative = 0;
    if (n && s[0] == '-') {
        negative = 1;
        i = 1;
    }
    if (i >= n || (s[i] == '0' && (n - i > 1 || negative)) || n - i > 19) return 0;
    uint64_t value = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        value = value * 10 + (uint64_t)(s[i] - '0');
    }
    if (value > (uint64_t)INT64_MAX + (uint64_t)negative) return 0;
    *out = negative ? (int64_t)(0 - value) : (int64_t)value;
    return 1;
}

int sk_format_code(const char *s, size_t n) {
    const char *dot = memchr(s, '.', n), *exp = memchr(s, 'e', n);
    ptrdiff_t end = exp ? exp - s : (ptrdiff_t)n;
    ptrdiff_t code = (dot ? end - (dot - s) - 1 : 0) + (exp ? 128 : 0);
    return code < 0 ? 0 : code > 255 ? 255 : (int)code;
}

int sk_parse_decimal(const char *s, size_t n, double *out) {
    char local[64];
    if (n == 0 || n >= sizeof local) return 0;
    /* strtod reads hex, "inf" and "nan" where Python's float() differs: Python decides */
    if (memchr(s, 'x', n) || memchr(s, 'X', n)) return 0;
    memcpy(local, s, n);
    local[n] = 0;
    char *parsed_to;
    double x = strtod_l(local, &parsed_to, C_LOCALE);
    if (parsed_to != local + n || !isfinite(x)) return 0;
    *out = x;
    return 1;
}
