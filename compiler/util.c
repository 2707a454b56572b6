/* util.c - allocation that never fails, arenas, checked arithmetic, number formatting.
 *
 * An Arena is a list of chunks; allocations are bump-pointer, zeroed and 16-byte
 * aligned, and everything is released at once by arena_free.  Large requests get a
 * chunk of their own so a huge identifier or array never wastes a chunk's tail.
 */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) die("out of memory (%zu bytes)", n);
  return p;
}

void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) die("out of memory (%zu x %zu bytes)", n, size);
  return p;
}

void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) die("out of memory (%zu bytes)", n);
  return q;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

char *xstrndup(const char *s, size_t n) {
  char *p = xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *xasprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) die("vsnprintf failed");
  char *p = xmalloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}

/* --- arenas --- */

typedef struct Chunk {
  struct Chunk *next;
  size_t used, size;
  _Alignas(16) unsigned char data[];
} Chunk;

struct Arena {
  Chunk *head;
};

enum { CHUNK_SIZE = 64 * 1024 };

Arena *arena_new(void) { return xcalloc(1, sizeof(Arena)); }

void arena_free(Arena *a) {
  if (!a) return;
  for (Chunk *c = a->head, *next; c; c = next) {
    next = c->next;
    free(c);
  }
  free(a);
}

void *arena_alloc(Arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  Chunk *c = a->head;
  if (!c || c->size - c->used < n) {
    size_t size = n > CHUNK_SIZE / 4 ? n : CHUNK_SIZE;
    Chunk *fresh = xmalloc(sizeof(Chunk) + size);
    fresh->used = 0;
    fresh->size = size;
    if (size == n && c) { /* a big block: keep filling the current chunk afterwards */
      fresh->next = c->next;
      c->next = fresh;
      c = fresh;
    } else {
      fresh->next = c;
      a->head = c = fresh;
    }
  }
  void *p = c->data + c->used;
  c->used += n;
  memset(p, 0, n);
  return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
  char *p = arena_alloc(a, n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *arena_strdup(Arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }

char *arena_printf(Arena *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) die("vsnprintf failed");
  char *p = arena_alloc(a, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}

/* Arrays grow by doubling; the capacity is implied by the count (the next power of two),
 * so no capacity field is needed (callers must only grow arrays through here).  Old storage stays in the arena until it is freed. */
void *arena_push(Arena *a, void *array_ptr, int *n, size_t elem) {
  void **array = array_ptr;
  int count = *n;
  int cap = 0; /* 0, then 4, 8, 16, ...: the smallest such capacity that holds count */
  if (count > 0) {
    cap = 4;
    while (cap < count) cap *= 2;
  }
  if (count == cap) {
    if (cap > (1 << 29)) die("array too large");
    int ncap = cap ? cap * 2 : 4;
    void *fresh = arena_alloc(a, (size_t)ncap * elem);
    if (count) memcpy(fresh, *array, (size_t)count * elem);
    *array = fresh;
  }
  *n = count + 1;
  return (char *)*array + (size_t)count * elem;
}

int checked_mul(int64_t a, int64_t b, int64_t *r) {
  return __builtin_mul_overflow(a, b, r) ? -1 : 0;
}

int checked_add(int64_t a, int64_t b, int64_t *r) {
  return __builtin_add_overflow(a, b, r) ? -1 : 0;
}

char *fmt_thousands(char *buf, int64_t v) {
  char digits[32];
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  int nd = snprintf(digits, sizeof digits, "%llu", (unsigned long long)u);
  char *p = buf;
  if (v < 0) *p++ = '-';
  for (int i = 0; i < nd; i++) {
    if (i > 0 && (nd - i) % 3 == 0) *p++ = ',';
    *p++ = digits[i];
  }
  *p = '\0';
  return buf;
}

int edit_distance(const char *a, const char *b, int cap) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return cap + 1;
  int prev[65], cur[65];
  for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = (int)i;
    int best = cur[0];
    for (size_t j = 1; j <= lb; j++) {
      int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
      int del = prev[j] + 1, ins = cur[j - 1] + 1;
      int v = sub < del ? sub : del;
      cur[j] = v < ins ? v : ins;
      if (cur[j] < best) best = cur[j];
    }
    if (best > cap) return cap + 1; /* every later row is at least this far */
    memcpy(prev, cur, sizeof(int) * (lb + 1));
  }
  return prev[lb];
}

int c_reserved_name(const char *s) {
  static const char *const kw[] = {
      "auto", "bool", "break", "case", "char", "const", "continue", "default", "do", "double",
      "else", "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long",
      "register", "restrict", "return", "short", "signed", "sizeof", "static", "struct",
      "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "true", "false",
      "alignas", "alignof", "asm", "catch", "class", "constexpr", "delete", "explicit",
      "export", "friend", "mutable", "namespace", "new", "noexcept", "nullptr", "operator",
      "private", "protected", "public", "template", "this", "throw", "try", "typename",
      "using", "virtual", "int32_t", "int64_t", "uint64_t", "NULL"};
  for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
    if (!strcmp(s, kw[i])) return 1;
  return s[0] == '_' && ((s[1] >= 'A' && s[1] <= 'Z') || s[1] == '_');  /* reserved */
}
