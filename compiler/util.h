/* util.h - allocation that never fails, arenas, and growable arrays.
 *
 * The AST and the graph IR each live in one Arena and are freed at once; the
 * driver frees everything before exit so the tests run clean under LeakSanitizer.
 */
#ifndef NNCC_UTIL_H
#define NNCC_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Out of memory is an internal error: these print it and abort, never return NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

typedef struct Arena Arena;
Arena *arena_new(void);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t n);                  /* zeroed, 16-byte aligned */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends one zeroed element of size `elem` to *array (count *n), growing it in the arena. */
void *arena_push(Arena *a, void *array_ptr, int *n, size_t elem);

/* Checked int64 arithmetic for shapes and sizes: returns 0 and sets *r, or -1 on overflow. */
int checked_mul(int64_t a, int64_t b, int64_t *r);
int checked_add(int64_t a, int64_t b, int64_t *r);

/* Levenshtein distance between a and b, for "did you mean"; any value above cap is returned
 * as cap + 1 (names longer than 64 characters are never close). */
int edit_distance(const char *a, const char *b, int cap);

/* A C or C++ keyword, a type the generated header uses, or a reserved identifier (_X, __x):
 * a name the generated C interface cannot use as it is. */
int c_reserved_name(const char *s);

/* "62,378,344" into buf (at least 32 bytes); returns buf. */
char *fmt_thousands(char *buf, int64_t v);

#endif
