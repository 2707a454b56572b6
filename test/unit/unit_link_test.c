/* unit_link_test.c - unit checks of compiler/link.c and outputs.c that need no toolchain:
 * the embedded weights' assembler text keeps a 64-bit size (5 GiB: nothing truncates to 32
 * bits, unlike the LLVM string constant it replaced), the ELF object written around 5 GiB of
 * weights (a sparse file: the data is never written), and the artifact kinds by extension.
 * Prints one line per case; unit_link.test pins them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "link.h"
#include "outputs.h"

int main(int argc, char **argv) {
  /* argv[1]: an ELF object with 5 GiB of (sparse, never written) weights, for llvm-readelf */
  if (argc == 2) {
    FILE *f = fopen(argv[1], "wb");
    uint64_t bytes = 5ull << 30;
    if (!f || embed_elf_begin(f, "vgg_nncc_weights", bytes) || embed_elf_end(f, "vgg_nncc_weights", bytes) ||
        fclose(f))
      return 1;
    return 0;
  }
  char *s = embed_weights_asm("vgg", "/tmp/nncc-vgg-XXXXXX/vgg.weights", 5ull << 30);
  fputs(s, stdout);
  free(s);
  static const char *const names[] = {"m.so", "dir.v2/m", "m.a", "m.o", "m.bin", ".hidden", "a/b.c/m"};
  for (int i = 0; i < 7; i++) {
    OutputKind k = outputs_kind(names[i]);
    char *h = outputs_header(names[i], k);
    printf("kind %s: %d header %s\n", names[i], (int)k, h ? h : "-");
    free(h);
  }
  return 0;
}
