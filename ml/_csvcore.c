/* ml._csvcore: the hot loops of dataset registration, in C, with exactly the rules of ml/datasets.py.
 *
 * Why native: registering a gigabyte needs parsing, typing, the canonical row encoding and one
 * SHA-256 per row at tens of MB/s, which per-row Python cannot reach. Every rule here mirrors the
 * pure-Python reference (ml/_csvref.py, itself the csv module plus ml/datasets.py's rules), and the
 * tests run both on the same inputs and compare every output and every error.
 *
 * One object, a Core, is fed the file's bytes in chunks (after a leading UTF-8 BOM, which the
 * caller strips). It does, byte by byte:
 *   1. strict UTF-8 validation and NUL detection over every byte (their errors outrank any CSV
 *      error, as in ml/datasets.py, where the whole file is decoded before it is parsed);
 *   2. the csv module's reader state machine for the one dialect we read (",", '"', doublequote,
 *      strict, no escape char), with its line numbering (a line ends at \n, \r\n or a lone \r);
 *   3. per record, depending on the mode:
 *      - MODE_INFER: the header, the limits (field chars, ragged rows, rows, cells) and the column
 *        type flags (boolean / integer / float / string);
 *      - MODE_ENCODE: for known column types, the canonical JSON row, its SHA-256 (OpenSSL, as
 *        hashlib), and optionally the typed Python values, the start line and the byte offset of
 *        every stride-th row.
 * Floats: a token with at most 15 significant digits in the normal range is formatted directly
 * (such a decimal round-trips through a double, so Python's repr gives back exactly its digits);
 * any other goes through PyOS_string_to_double and PyOS_double_to_string, which are float() and
 * repr() themselves. The GIL is held throughout (those two need it); feed a chunk at a time.
 * The file runs past 400 lines because the state machine, the typing and the encoding share one
 * record buffer and one error path; splitting them would only add glue.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>

enum { START_RECORD, START_FIELD, IN_FIELD, IN_QUOTED_FIELD, QUOTE_IN_QUOTED_FIELD, EAT_CRNL };
enum { MODE_INFER = 0, MODE_ENCODE = 1 };
enum { T_INTEGER = 0, T_FLOAT = 1, T_STRING = 2, T_BOOLEAN = 3 };
enum { SAW_BOOL = 1, SAW_INT = 2, SAW_FLOAT = 4, IS_STRING = 8 };

typedef struct {
    PyObject_HEAD
    int mode;
    long long max_rows, max_cells, max_field_chars, field_limit, int_digits;
    /* encode configuration */
    Py_ssize_t ntypes;
    unsigned char *types;
    int emit_digests, emit_rows, emit_lines, skip_header;
    long long stride, max_records;
    /* byte level */
    unsigned long long offset, newlines;
    int u8_need;
    unsigned char u8_lo, u8_hi;
    unsigned long long u8_lead_offset, u8_lead_newlines;
    int stopped;        /* a UTF-8 error: nothing more is looked at */
    int parse_done;     /* the CSV parse has stopped (error, NUL, or max_records reached) */
    int utf8_error;
    unsigned long long utf8_offset, utf8_line;
    int nul_error;
    unsigned long long nul_offset, nul_line;
    /* csv state */
    int state, pending_cr, line_open;
    unsigned long long lines_done, rec_line, rec_offset;
    /* current record */
    char *buf;
    Py_ssize_t buf_len, buf_cap, field_start;
    Py_ssize_t *ends;
    Py_ssize_t nfields, ends_cap;
    long long field_chars, rec_violation;
    /* counts */
    long long records, rows, width;
    /* infer results */
    PyObject *header;
    unsigned char *colstate;
    /* the first CSV or limit error: kind, record index and a dict of details */
    PyObject *error;
    long long error_record;
    /* encode outputs */
    char *canon;
    Py_ssize_t canon_len, canon_cap;
    char *digests;
    Py_ssize_t dig_len, dig_cap;
    PyObject *rows_out;
    unsigned long long *lines, *locators;
    Py_ssize_t nlines, lines_cap, nlocators, locators_cap;
} Core;

static PyObject *ScanError;

/* ------------------------------------------------------------------------------ buffers */

static int grow(char **p, Py_ssize_t *cap, Py_ssize_t need) {
    if (need <= *cap) return 0;
    Py_ssize_t n = *cap ? *cap : 256;
    while (n < need) n *= 2;
    char *q = PyMem_Realloc(*p, (size_t)n);
    if (!q) { PyErr_NoMemory(); return -1; }
    *p = q; *cap = n;
    return 0;
}

static int push_u64(unsigned long long **p, Py_ssize_t *len, Py_ssize_t *cap, unsigned long long v) {
    if (*len == *cap) {
        Py_ssize_t n = *cap ? *cap * 2 : 1024;
        unsigned long long *q = PyMem_Realloc(*p, (size_t)n * sizeof(unsigned long long));
        if (!q) { PyErr_NoMemory(); return -1; }
        *p = q; *cap = n;
    }
    (*p)[(*len)++] = v;
    return 0;
}

static inline int canon_put(Core *s, const char *data, Py_ssize_t n) {
    if (s->canon_len + n > s->canon_cap && grow(&s->canon, &s->canon_cap, s->canon_len + n) < 0)
        return -1;
    memcpy(s->canon + s->canon_len, data, (size_t)n);
    s->canon_len += n;
    return 0;
}

/* ------------------------------------------------------------------------------ errors */

/* Record the first CSV-level error (kind + details) and stop parsing. Returns -1 only when
 * Python itself failed (memory). */
static int csv_fail(Core *s, const char *kind, PyObject *details) {
    if (!details) return -1;
    if (!s->error) {
        s->error = Py_BuildValue("(sN)", kind, details);
        if (!s->error) return -1;
        s->error_record = s->records;
    } else {
        Py_DECREF(details);
    }
    s->parse_done = 1;
    return 0;
}

static unsigned long long current_line(Core *s) {
    unsigned long long line = s->lines_done + (s->line_open ? 1 : 0);
    return line > s->rec_line ? line : s->rec_line;
}

static int malformed(Core *s, const char *detail) {
    return csv_fail(s, "csv", Py_BuildValue("{sKss}", "line", current_line(s), "detail", detail));
}

/* ------------------------------------------------------------------------------ numbers */

typedef struct {
    int kind;          /* 0: not a number, 1: JSON integer, 2: JSON number (not an integer) */
    int neg;
    const char *ip, *fp;
    Py_ssize_t il, fl;
    long long exp;     /* saturated at +-10^12 */
} Num;

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

/* The grammar -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? of ml.datasets._NUMBER. */
static void parse_num(const char *p, Py_ssize_t n, Num *out) {
    Py_ssize_t i = 0;
    out->kind = 0; out->neg = 0; out->il = out->fl = 0; out->exp = 0;
    out->ip = out->fp = p;
    if (i < n && p[i] == '-') { out->neg = 1; i++; }
    if (i >= n || !is_digit(p[i])) return;
    out->ip = p + i;
    if (p[i] == '0') i++;
    else while (i < n && is_digit(p[i])) i++;
    out->il = (p + i) - out->ip;
    int integer = 1;
    if (i < n && p[i] == '.') {
        i++;
        out->fp = p + i;
        Py_ssize_t start = i;
        while (i < n && is_digit(p[i])) i++;
        if (i == start) return;
        out->fl = i - start;
        integer = 0;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < n && (p[i] == '+' || p[i] == '-')) { eneg = p[i] == '-'; i++; }
        Py_ssize_t start = i;
        long long e = 0;
        while (i < n && is_digit(p[i])) {
            if (e < 1000000000000LL) e = e * 10 + (p[i] - '0');
            i++;
        }
        if (i == start) return;
        out->exp = eneg ? -e : e;
        integer = 0;
    }
    if (i != n) return;
    out->kind = integer ? 1 : 2;
}

/* Significant digits of a parsed number (leading and trailing zeros stripped) and the decimal
 * exponent: value = 0.d1d2...dk x 10^decpt. Copies at most `room` digits; returns k. */
static Py_ssize_t num_digits(const Num *num, char *digits, Py_ssize_t room, long long *decpt) {
    Py_ssize_t total = num->il + num->fl, first = -1, last = -1;
    for (Py_ssize_t j = 0; j < total; j++) {
        char c = j < num->il ? num->ip[j] : num->fp[j - num->il];
        if (c != '0') { if (first < 0) first = j; last = j; }
    }
    if (first < 0) { *decpt = 0; return 0; }
    Py_ssize_t k = last - first + 1;
    for (Py_ssize_t j = 0; j < k && j < room; j++) {
        Py_ssize_t at = first + j;
        digits[j] = at < num->il ? num->ip[at] : num->fp[at - num->il];
    }
    *decpt = (long long)num->il - (long long)first + num->exp;
    return k;
}

/* float(token) for a token of the number grammar, with Python's own correctly rounded parser. */
static int token_to_double(const char *p, Py_ssize_t n, double *out) {
    char small[64];
    char *tmp = n < 63 ? small : PyMem_Malloc((size_t)n + 1);
    if (!tmp) { PyErr_NoMemory(); return -1; }
    memcpy(tmp, p, (size_t)n);
    tmp[n] = 0;
    double x = PyOS_string_to_double(tmp, NULL, NULL);
    if (tmp != small) PyMem_Free(tmp);
    if (x == -1.0 && PyErr_Occurred()) return -1;
    *out = x;
    return 0;
}

/* Whether a number token is finite as a double (the _is_number rule); -1 on a Python error. */
static int finite_number(const char *p, Py_ssize_t n, const Num *num) {
    if (num->kind == 1) return 1;
    char digits[1];
    long long decpt;
    if (num_digits(num, digits, 0, &decpt) == 0 || decpt <= 308) return 1;
    if (decpt >= 310) return 0;
    double x;
    if (token_to_double(p, n, &x) < 0) return -1;
    return !Py_IS_INFINITY(x);
}

/* repr(float(token)) appended to the canonical buffer; 1 if the value is not finite. */
static int put_float(Core *s, const char *p, Py_ssize_t n, const Num *num) {
    char digits[16];
    long long decpt;
    Py_ssize_t k = num_digits(num, digits, 16, &decpt);
    if (k == 0) return canon_put(s, num->neg ? "-0.0" : "0.0", num->neg ? 4 : 3);
    if (k <= 15 && decpt >= -300 && decpt <= 300) {
        char out[64];
        Py_ssize_t o = 0;
        if (num->neg) out[o++] = '-';
        if (decpt <= -4 || decpt > 16) {
            long long e = decpt - 1;
            out[o++] = digits[0];
            if (k > 1) { out[o++] = '.'; memcpy(out + o, digits + 1, (size_t)k - 1); o += k - 1; }
            o += snprintf(out + o, sizeof(out) - (size_t)o, "e%c%02lld", e < 0 ? '-' : '+',
                          e < 0 ? -e : e);
        } else if (decpt <= 0) {
            out[o++] = '0'; out[o++] = '.';
            for (long long z = 0; z < -decpt; z++) out[o++] = '0';
            memcpy(out + o, digits, (size_t)k); o += k;
        } else if (decpt >= k) {
            memcpy(out + o, digits, (size_t)k); o += k;
            for (long long z = k; z < decpt; z++) out[o++] = '0';
            out[o++] = '.'; out[o++] = '0';
        } else {
            memcpy(out + o, digits, (size_t)decpt); o += (Py_ssize_t)decpt;
            out[o++] = '.';
            memcpy(out + o, digits + decpt, (size_t)(k - decpt)); o += k - (Py_ssize_t)decpt;
        }
        return canon_put(s, out, o);
    }
    double x;
    if (token_to_double(p, n, &x) < 0) return -1;
    if (Py_IS_INFINITY(x) || Py_IS_NAN(x)) return x > 0 ? 1 : 2;
    char *text = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!text) return -1;
    int rc = canon_put(s, text, (Py_ssize_t)strlen(text));
    PyMem_Free(text);
    return rc;
}

/* The JSON string of a field, as json.dumps(ensure_ascii=False) writes it. */
static int put_string(Core *s, const unsigned char *p, Py_ssize_t n) {
    static const char hex[] = "0123456789abcdef";
    if (grow(&s->canon, &s->canon_cap, s->canon_len + 6 * n + 2) < 0) return -1;
    char *o = s->canon + s->canon_len;
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\') { *o++ = (char)c; continue; }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        default: *o++ = 'u'; *o++ = '0'; *o++ = '0'; *o++ = hex[c >> 4]; *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    s->canon_len = o - s->canon;
    return 0;
}

static int is_bool(const char *p, Py_ssize_t n, int *value) {
    char low[5];
    if (n != 4 && n != 5) return 0;
    for (Py_ssize_t i = 0; i < n; i++) low[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
    if (n == 4 && memcmp(low, "true", 4) == 0) { *value = 1; return 1; }
    if (n == 5 && memcmp(low, "false", 5) == 0) { *value = 0; return 1; }
    return 0;
}

/* ------------------------------------------------------------------------------ records */

static inline const char *field_ptr(Core *s, Py_ssize_t j) { return s->buf + (j ? s->ends[j - 1] : 0); }
static inline Py_ssize_t field_len(Core *s, Py_ssize_t j) {
    return s->ends[j] - (j ? s->ends[j - 1] : 0);
}

static int type_fields(Core *s) {
    for (Py_ssize_t j = 0; j < s->width; j++) {
        unsigned char st = s->colstate[j];
        Py_ssize_t n = field_len(s, j);
        if ((st & IS_STRING) || n == 0) continue;
        const char *p = field_ptr(s, j);
        int bval;
        Num num;
        if (is_bool(p, n, &bval)) st |= SAW_BOOL;
        else {
            parse_num(p, n, &num);
            if (num.kind == 1) st |= SAW_INT;
            else if (num.kind == 2) {
                int fin = finite_number(p, n, &num);
                if (fin < 0) return -1;
                st |= fin ? SAW_FLOAT : IS_STRING;
            } else st |= IS_STRING;
        }
        if ((st & SAW_BOOL) && (st & (SAW_INT | SAW_FLOAT))) st |= IS_STRING;
        s->colstate[j] = st;
    }
    return 0;
}

static PyObject *decode_field(Core *s, Py_ssize_t j) {
    return PyUnicode_DecodeUTF8(field_ptr(s, j), field_len(s, j), "strict");
}

static int changed(Core *s, const char *what) {
    PyErr_SetObject(ScanError, Py_BuildValue("(s{sLss})", "changed", "row", s->rows, "detail", what));
    return -1;
}

/* One data row in MODE_ENCODE: canonical bytes, digest, values, line, locator. */
static int encode_row(Core *s) {
    PyObject *tuple = NULL;
    if (s->emit_rows && !(tuple = PyTuple_New(s->width))) return -1;
    s->canon_len = 0;
    if (canon_put(s, "[", 1) < 0) goto fail;
    for (Py_ssize_t j = 0; j < s->width; j++) {
        const char *p = field_ptr(s, j);
        Py_ssize_t n = field_len(s, j);
        PyObject *value = NULL;
        if (j && canon_put(s, ",", 1) < 0) goto fail;
        if (n == 0) {
            if (canon_put(s, "null", 4) < 0) goto fail;
            if (tuple) { Py_INCREF(Py_None); PyTuple_SET_ITEM(tuple, j, Py_None); }
            continue;
        }
        unsigned char t = s->types[j];
        if (t == T_STRING) {
            if (put_string(s, (const unsigned char *)p, n) < 0) goto fail;
            if (tuple && !(value = PyUnicode_DecodeUTF8(p, n, "strict"))) goto fail;
        } else if (t == T_BOOLEAN) {
            int b;
            if (!is_bool(p, n, &b)) { changed(s, "a boolean column holds another value"); goto fail; }
            if (canon_put(s, b ? "true" : "false", b ? 4 : 5) < 0) goto fail;
            if (tuple) { value = b ? Py_True : Py_False; Py_INCREF(value); }
        } else {
            Num num;
            parse_num(p, n, &num);
            if (num.kind == 0 || (t == T_INTEGER && num.kind != 1)) {
                changed(s, "a numeric column holds another value");
                goto fail;
            }
            if (t == T_INTEGER) {
                long long digits = (long long)num.il;
                if (s->int_digits > 0 && digits > s->int_digits) {
                    PyErr_SetObject(ScanError, Py_BuildValue("(s{sLsLsn})", "int_digits", "row",
                                                             s->rows, "digits", digits, "column", j));
                    goto fail;
                }
                if (n == 2 && p[0] == '-' && p[1] == '0') {
                    if (canon_put(s, "0", 1) < 0) goto fail;
                } else if (canon_put(s, p, n) < 0) goto fail;
                if (tuple) {
                    char small[64];
                    char *tmp = n < 63 ? small : PyMem_Malloc((size_t)n + 1);
                    if (!tmp) { PyErr_NoMemory(); goto fail; }
                    memcpy(tmp, p, (size_t)n); tmp[n] = 0;
                    value = PyLong_FromString(tmp, NULL, 10);
                    if (tmp != small) PyMem_Free(tmp);
                    if (!value) goto fail;
                }
            } else {
                int rc = put_float(s, p, n, &num);
                if (rc < 0) goto fail;
                if (rc > 0) {
                    PyErr_SetObject(ScanError, Py_BuildValue("(s{sLsnsi})", "inf", "row", s->rows,
                                                             "column", j, "negative", rc == 2));
                    goto fail;
                }
                if (tuple) {
                    double x;
                    if (token_to_double(p, n, &x) < 0 || !(value = PyFloat_FromDouble(x))) goto fail;
                }
            }
        }
        if (tuple) PyTuple_SET_ITEM(tuple, j, value);
    }
    if (canon_put(s, "]", 1) < 0) goto fail;
    if (s->emit_digests) {
        if (grow(&s->digests, &s->dig_cap, s->dig_len + 32) < 0) goto fail;
        /* The low-level calls: the one-shot SHA256() of OpenSSL 3 fetches an EVP method per call,
         * which costs more than hashing a short row. */
        SHA256_CTX ctx;
        SHA256_Init(&ctx);
        SHA256_Update(&ctx, s->canon, (size_t)s->canon_len);
        SHA256_Final((unsigned char *)s->digests + s->dig_len, &ctx);
        s->dig_len += 32;
    }
    if (tuple) {
        int rc = PyList_Append(s->rows_out, tuple);
        Py_DECREF(tuple);
        if (rc < 0) return -1;
    }
    if (s->emit_lines && push_u64(&s->lines, &s->nlines, &s->lines_cap, s->rec_line) < 0) return -1;
    if (s->stride > 0 && s->rows % s->stride == 0 &&
        push_u64(&s->locators, &s->nlocators, &s->locators_cap, s->rec_offset) < 0)
        return -1;
    return 0;
fail:
    Py_XDECREF(tuple);
    return -1;
}

/* A record is complete: check it and hand it to the mode. */
static int record_done(Core *s) {
    int header = s->skip_header && s->records == 0;
    if (s->mode == MODE_INFER) {
        if (s->rec_violation >= 0) {
            if (csv_fail(s, "field_chars", Py_BuildValue("{sL}", "actual", s->rec_violation)) < 0)
                return -1;
            return 0;
        }
        if (header) {
            s->width = s->nfields;
            if (!(s->header = PyList_New(s->nfields))) return -1;
            for (Py_ssize_t j = 0; j < s->nfields; j++) {
                PyObject *name = decode_field(s, j);
                if (!name) return -1;
                PyList_SET_ITEM(s->header, j, name);
            }
            s->colstate = PyMem_Calloc((size_t)(s->width ? s->width : 1), 1);
            if (!s->colstate) { PyErr_NoMemory(); return -1; }
        } else {
            if (s->nfields != s->width)
                return csv_fail(s, "ragged", Py_BuildValue("{sKsLsn}", "line", s->rec_line,
                                                           "expected", s->width, "actual",
                                                           s->nfields));
            if (s->rows >= s->max_rows) return csv_fail(s, "max_rows", PyDict_New());
            if (s->width && s->rows + 1 > s->max_cells / s->width)
                return csv_fail(s, "max_cells", PyDict_New());
            if (type_fields(s) < 0) return -1;
            s->rows++;
        }
    } else {
        if (header) {
            if (s->nfields != s->ntypes) return changed(s, "the header changed");
            s->width = s->nfields;
        } else {
            s->width = s->ntypes;
            if (s->nfields != s->width) return changed(s, "a row has another number of fields");
            if (encode_row(s) < 0) return -1;
            s->rows++;
        }
    }
    s->records++;
    if (s->max_records >= 0 && s->records >= s->max_records) s->parse_done = s->stopped = 1;
    return 0;
}

/* ------------------------------------------------------------------------------ the state machine */

static inline int add_char(Core *s, unsigned char c) {
    if ((c & 0xC0) != 0x80) {
        if (s->field_chars >= s->field_limit) {
            char detail[64];
            snprintf(detail, sizeof detail, "field larger than field limit (%lld)", s->field_limit);
            return csv_fail(s, "field_limit", Py_BuildValue("{sKss}", "line", current_line(s),
                                                            "detail", detail));
        }
        s->field_chars++;
    }
    if (s->buf_len == s->buf_cap && grow(&s->buf, &s->buf_cap, s->buf_len + 1) < 0) return -1;
    s->buf[s->buf_len++] = (char)c;
    return 0;
}

static inline int save_field(Core *s) {
    if (s->nfields == s->ends_cap) {
        Py_ssize_t n = s->ends_cap ? s->ends_cap * 2 : 64;
        Py_ssize_t *q = PyMem_Realloc(s->ends, (size_t)n * sizeof(Py_ssize_t));
        if (!q) { PyErr_NoMemory(); return -1; }
        s->ends = q; s->ends_cap = n;
    }
    s->ends[s->nfields++] = s->buf_len;
    if (s->rec_violation < 0 && s->field_chars > s->max_field_chars) s->rec_violation = s->field_chars;
    s->field_chars = 0;
    return 0;
}

static void reset_record(Core *s, unsigned long long next_offset) {
    s->buf_len = 0; s->nfields = 0; s->field_chars = 0; s->rec_violation = -1;
    s->rec_line = s->lines_done + 1;
    s->rec_offset = next_offset;
}

static int csv_char(Core *s, unsigned char c) {
    switch (s->state) {
    case START_RECORD:
        if (c == '\n' || c == '\r') { s->state = EAT_CRNL; return 0; }
        s->state = START_FIELD;
        /* fallthrough */
    case START_FIELD:
        if (c == '\n' || c == '\r') { s->state = EAT_CRNL; return save_field(s); }
        if (c == '"') { s->state = IN_QUOTED_FIELD; return 0; }
        if (c == ',') return save_field(s);
        s->state = IN_FIELD;
        return add_char(s, c);
    case IN_FIELD:
        if (c == '\n' || c == '\r') { s->state = EAT_CRNL; return save_field(s); }
        if (c == ',') { s->state = START_FIELD; return save_field(s); }
        return add_char(s, c);
    case IN_QUOTED_FIELD:
        if (c == '"') { s->state = QUOTE_IN_QUOTED_FIELD; return 0; }
        return add_char(s, c);
    case QUOTE_IN_QUOTED_FIELD:
        if (c == '"') { s->state = IN_QUOTED_FIELD; return add_char(s, c); }
        if (c == ',') { s->state = START_FIELD; return save_field(s); }
        if (c == '\n' || c == '\r') { s->state = EAT_CRNL; return save_field(s); }
        return malformed(s, "',' expected after '\"'");
    default: /* EAT_CRNL */
        if (c == '\n' || c == '\r') return 0;
        return malformed(s, "new-line character seen in unquoted field - do you need to open the "
                            "file with newline=''?");
    }
}

/* The end of a line (the csv module's EOL sentinel); next_offset is where the next line starts. */
static int csv_eol(Core *s, unsigned long long next_offset) {
    int done = 0;
    s->line_open = 0;
    s->lines_done++;
    if (s->parse_done) return 0;
    switch (s->state) {
    case START_RECORD: done = 1; break;
    case START_FIELD: case IN_FIELD: case QUOTE_IN_QUOTED_FIELD:
        if (save_field(s) < 0) return -1;
        s->state = START_RECORD; done = 1; break;
    case IN_QUOTED_FIELD: break;
    default: s->state = START_RECORD; done = 1;
    }
    if (!done) return 0;
    if (record_done(s) < 0) return -1;
    reset_record(s, next_offset);
    return 0;
}

/* Bytes that, inside an unquoted (or quoted) field, are plain ASCII data: no delimiter, quote,
 * line break, NUL or start of a multi-byte sequence. Runs of them take the fast path below. */
static unsigned char plain_unquoted[256], plain_quoted[256];

static void init_tables(void) {
    for (int c = 0; c < 256; c++) {
        int plain = c > 0 && c < 0x80 && c != '\n' && c != '\r';
        plain_unquoted[c] = (unsigned char)(plain && c != ',');
        plain_quoted[c] = (unsigned char)(plain && c != '"');
    }
}

static int feed_bytes(Core *s, const unsigned char *p, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n && !s->stopped; i++) {
        /* 0. the fast path: a run of plain ASCII bytes inside a field is copied at once */
        if ((s->state == IN_FIELD || s->state == IN_QUOTED_FIELD) && !s->u8_need &&
            !s->pending_cr && !s->parse_done) {
            const unsigned char *plain = s->state == IN_FIELD ? plain_unquoted : plain_quoted;
            Py_ssize_t j = i;
            while (j < n && plain[p[j]]) j++;
            Py_ssize_t run = j - i;
            if (run > 0 && s->field_chars + run <= s->field_limit) {
                if (s->buf_len + run > s->buf_cap && grow(&s->buf, &s->buf_cap, s->buf_len + run) < 0)
                    return -1;
                memcpy(s->buf + s->buf_len, p + i, (size_t)run);
                s->buf_len += run;
                s->field_chars += run;
                s->line_open = 1; /* a quoted field's run may start a line */
                i = j;
                if (i >= n) break;
            }
        }
        unsigned char c = p[i];
        unsigned long long off = s->offset + (unsigned long long)i;
        /* 1. strict UTF-8 and NUL */
        if (s->u8_need) {
            if (c < s->u8_lo || c > s->u8_hi) goto utf8_error;
            s->u8_lo = 0x80; s->u8_hi = 0xBF; s->u8_need--;
        } else if (c >= 0x80) {
            s->u8_lead_offset = off; s->u8_lead_newlines = s->newlines;
            s->u8_lo = 0x80; s->u8_hi = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) s->u8_need = 1;
            else if (c >= 0xE0 && c <= 0xEF) {
                s->u8_need = 2;
                if (c == 0xE0) s->u8_lo = 0xA0;
                else if (c == 0xED) s->u8_hi = 0x9F;
            } else if (c >= 0xF0 && c <= 0xF4) {
                s->u8_need = 3;
                if (c == 0xF0) s->u8_lo = 0x90;
                else if (c == 0xF4) s->u8_hi = 0x8F;
            } else goto utf8_error;
        } else if (c == 0 && !s->nul_error) {
            s->nul_error = 1; s->nul_offset = off; s->nul_line = s->newlines + 1;
            s->parse_done = 1;
        }
        if (c == '\n') s->newlines++;
        if (s->parse_done) continue;
        /* 2. lines and the CSV state machine */
        if (s->pending_cr) {
            s->pending_cr = 0;
            if (c == '\n') {
                if (csv_char(s, c) < 0 || csv_eol(s, off + 1) < 0) return -1;
                continue;
            }
            if (csv_eol(s, off) < 0) return -1;
            if (s->parse_done) continue;
        }
        s->line_open = 1;
        if (csv_char(s, c) < 0) return -1;
        if (s->parse_done) continue;
        if (c == '\r') s->pending_cr = 1;
        else if (c == '\n' && csv_eol(s, off + 1) < 0) return -1;
        continue;
    utf8_error:
        s->utf8_error = 1;
        if (!s->u8_need) { s->u8_lead_offset = off; s->u8_lead_newlines = s->newlines; }
        s->utf8_offset = s->u8_lead_offset; s->utf8_line = s->u8_lead_newlines + 1;
        s->stopped = 1; s->parse_done = 1;
    }
    s->offset += (unsigned long long)n;
    return 0;
}

/* ------------------------------------------------------------------------------ Python type */

static PyObject *take_outputs(Core *s) {
    PyObject *digests = s->emit_digests ? PyBytes_FromStringAndSize(s->digests, s->dig_len) : Py_None;
    if (!digests) return NULL;
    if (!s->emit_digests) Py_INCREF(Py_None);
    s->dig_len = 0;
    PyObject *rows = Py_None;
    if (s->emit_rows) {
        rows = s->rows_out;
        if (!(s->rows_out = PyList_New(0))) { Py_DECREF(digests); return NULL; }
    } else Py_INCREF(Py_None);
    return Py_BuildValue("(NN)", digests, rows);
}

static PyObject *Core_feed(Core *s, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    int rc = feed_bytes(s, view.buf, view.len);
    PyBuffer_Release(&view);
    if (rc < 0) return NULL;
    return take_outputs(s);
}

static PyObject *Core_finish(Core *s, PyObject *unused) {
    if (!s->stopped && s->u8_need) {
        s->utf8_error = 1; s->utf8_offset = s->u8_lead_offset; s->utf8_line = s->u8_lead_newlines + 1;
        s->stopped = 1; s->parse_done = 1;
    }
    if (!s->stopped && !s->parse_done) {
        if (s->pending_cr || s->line_open) {
            s->pending_cr = 0;
            if (csv_eol(s, s->offset) < 0) return NULL;
        }
        if (!s->parse_done && (s->buf_len != 0 || s->state == IN_QUOTED_FIELD)) {
            if (malformed(s, "unexpected end of data") < 0) return NULL;
        }
    }
    return take_outputs(s);
}

static PyObject *Core_result(Core *s, PyObject *unused) {
    PyObject *types = PyList_New(0);
    if (!types) return NULL;
    for (Py_ssize_t j = 0; s->colstate && j < s->width; j++) {
        unsigned char st = s->colstate[j];
        long t = (st & IS_STRING) ? T_STRING : (st & SAW_BOOL) ? T_BOOLEAN
               : (st & SAW_FLOAT) ? T_FLOAT : (st & SAW_INT) ? T_INTEGER : T_STRING;
        PyObject *v = PyLong_FromLong(t);
        if (!v || PyList_Append(types, v) < 0) { Py_XDECREF(v); Py_DECREF(types); return NULL; }
        Py_DECREF(v);
    }
    PyObject *lines = PyBytes_FromStringAndSize((const char *)s->lines, s->nlines * 8);
    PyObject *locators = PyBytes_FromStringAndSize((const char *)s->locators, s->nlocators * 8);
    if (!lines || !locators) { Py_DECREF(types); Py_XDECREF(lines); Py_XDECREF(locators); return NULL; }
    return Py_BuildValue(
        "{sOsNsLsLsOsLsNsNsNsN}",
        "header", s->header ? s->header : Py_None, "types", types, "rows", s->rows,
        "records", s->records, "error", s->error ? s->error : Py_None, "error_record",
        s->error_record, "utf8", s->utf8_error ? Py_BuildValue("(KK)", s->utf8_line, s->utf8_offset)
                                               : (Py_INCREF(Py_None), Py_None),
        "nul", s->nul_error ? Py_BuildValue("(KK)", s->nul_line, s->nul_offset)
                            : (Py_INCREF(Py_None), Py_None),
        "lines", lines, "locators", locators);
}

static PyObject *Core_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *names[] = {"mode", "max_rows", "max_cells", "max_field_chars", "field_limit",
                            "int_digits", "types", "digests", "rows", "lines", "stride",
                            "skip_header", "max_records", "offset", NULL};
    int mode = MODE_INFER, digests = 0, rows = 0, lines = 0, skip_header = 1;
    long long max_rows = LLONG_MAX, max_cells = LLONG_MAX, max_field_chars = LLONG_MAX;
    long long field_limit = 131072, int_digits = 0, stride = 0, max_records = -1;
    unsigned long long offset = 0;
    PyObject *types = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|iLLLLLOpppLpLK", names, &mode, &max_rows,
                                     &max_cells, &max_field_chars, &field_limit, &int_digits,
                                     &types, &digests, &rows, &lines, &stride, &skip_header,
                                     &max_records, &offset))
        return NULL;
    Core *s = (Core *)type->tp_alloc(type, 0);
    if (!s) return NULL;
    s->mode = mode; s->max_rows = max_rows; s->max_cells = max_cells;
    s->max_field_chars = max_field_chars; s->field_limit = field_limit; s->int_digits = int_digits;
    s->emit_digests = digests; s->emit_rows = rows; s->emit_lines = lines; s->stride = stride;
    s->skip_header = skip_header; s->max_records = max_records; s->offset = offset;
    s->rec_offset = offset; s->rec_line = 1; s->rec_violation = -1; s->error_record = -1;
    if (mode == MODE_ENCODE) {
        if (!types || !PyBytes_Check(types)) {
            PyErr_SetString(PyExc_TypeError, "MODE_ENCODE needs types as bytes");
            Py_DECREF(s); return NULL;
        }
        s->ntypes = PyBytes_GET_SIZE(types);
        s->types = PyMem_Malloc((size_t)s->ntypes + 1);
        if (!s->types) { Py_DECREF(s); return PyErr_NoMemory(); }
        memcpy(s->types, PyBytes_AS_STRING(types), (size_t)s->ntypes);
        s->width = s->ntypes;
    }
    if (!(s->rows_out = PyList_New(0))) { Py_DECREF(s); return NULL; }
    return (PyObject *)s;
}

static void Core_dealloc(Core *s) {
    PyMem_Free(s->types); PyMem_Free(s->buf); PyMem_Free(s->ends); PyMem_Free(s->colstate);
    PyMem_Free(s->canon); PyMem_Free(s->digests); PyMem_Free(s->lines); PyMem_Free(s->locators);
    Py_XDECREF(s->header); Py_XDECREF(s->error); Py_XDECREF(s->rows_out);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyObject *Core_get_offset(Core *s, void *c) { return PyLong_FromUnsignedLongLong(s->offset); }
static PyObject *Core_get_rows(Core *s, void *c) { return PyLong_FromLongLong(s->rows); }
static PyObject *Core_get_done(Core *s, void *c) { return PyBool_FromLong(s->parse_done); }

static PyMethodDef Core_methods[] = {
    {"feed", (PyCFunction)Core_feed, METH_O,
     "feed(chunk) -> (digests | None, rows | None) for the rows completed in this chunk"},
    {"finish", (PyCFunction)Core_finish, METH_NOARGS, "end of input -> the last outputs"},
    {"result", (PyCFunction)Core_result, METH_NOARGS, "a dict of what the scan found"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Core_getset[] = {
    {"offset", (getter)Core_get_offset, NULL, "bytes fed so far (absolute)", NULL},
    {"rows", (getter)Core_get_rows, NULL, "data rows completed so far", NULL},
    {"done", (getter)Core_get_done, NULL, "whether the CSV parse has stopped", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ml._csvcore.Core",
    .tp_basicsize = sizeof(Core),
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A CSV scan in one of two modes (see the module docstring of ml/_csvcore.c).",
    .tp_methods = Core_methods,
    .tp_getset = Core_getset,
    .tp_new = Core_new,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "ml._csvcore",
    .m_doc = "Native CSV scanning for ml.scanning.", .m_size = -1,
};

PyMODINIT_FUNC PyInit__csvcore(void) {
    init_tables();
    if (PyType_Ready(&CoreType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    ScanError = PyErr_NewException("ml._csvcore.ScanError", PyExc_ValueError, NULL);
    if (!ScanError || PyModule_AddObject(m, "ScanError", ScanError) < 0) return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "Core", (PyObject *)&CoreType) < 0) return NULL;
    PyModule_AddIntConstant(m, "MODE_INFER", MODE_INFER);
    PyModule_AddIntConstant(m, "MODE_ENCODE", MODE_ENCODE);
    PyModule_AddIntConstant(m, "VERSION", 1);
    return m;
}
