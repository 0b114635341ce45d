/* Build tool: turns the WAV files espeak-ng spoke for server/voicemail/prompts.txt into the
 * C table of 8 kHz samples compiled into sipbx (vm_prompt_table). Usage:
 *   mkprompts OUT.c NAME FILE.wav [NAME FILE.wav ...]
 * Leading and trailing silence is cut (espeak-ng pads its speech), leaving 30 ms. */
#include "audio/audio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUIET  64                /* |sample| below this counts as silence */
#define MARGIN (AUDIO_RATE / 33) /* kept around the speech */

static int read_file(const char *path, unsigned char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            unsigned char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    fclose(f);
    if (!buf)
        return ENOMEM;
    *data = buf;
    *len = n;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc % 2) {
        fprintf(stderr, "usage: mkprompts OUT.c NAME FILE.wav [NAME FILE.wav ...]\n");
        return 2;
    }
    FILE *out = fopen(argv[1], "w");
    if (!out) {
        fprintf(stderr, "mkprompts: cannot write %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    fprintf(out, "/* Generated from server/voicemail/prompts.txt by mkprompts: do not edit. */\n"
                 "#include \"voicemail/vm_int.h\"\n\n");
    int count = (argc - 2) / 2;
    for (int i = 0; i < count; i++) {
        const char *path = argv[3 + 2 * i];
        unsigned char *data = NULL;
        size_t len = 0, n = 0;
        int16_t *pcm;
        char err[256];
        int rc = read_file(path, &data, &len);
        if (rc != 0) {
            fprintf(stderr, "mkprompts: cannot read %s: %s\n", path, strerror(rc));
            return 1;
        }
        rc = audio_wav_read(data, len, &pcm, &n, err, sizeof err);
        free(data);
        if (rc != 0) {
            fprintf(stderr, "mkprompts: %s: %s\n", path, rc == EINVAL ? err : strerror(rc));
            return 1;
        }
        size_t a = 0, b = n;
        while (a < n && abs(pcm[a]) < QUIET)
            a++;
        while (b > a && abs(pcm[b - 1]) < QUIET)
            b--;
        if (a == b) {
            fprintf(stderr, "mkprompts: %s is silent\n", path);
            return 1;
        }
        a = a > MARGIN ? a - MARGIN : 0;
        b = b + MARGIN < n ? b + MARGIN : n;
        fprintf(out, "static const int16_t p%d[%zu] = {", i, b - a);
        for (size_t k = a; k < b; k++)
            fprintf(out, "%s%d,", (k - a) % 16 ? "" : "\n", pcm[k]);
        fprintf(out, "\n};\n");
        free(pcm);
    }
    fprintf(out, "\nconst struct vm_prompt vm_prompt_table[] = {\n");
    for (int i = 0; i < count; i++)
        fprintf(out, "    {\"%s\", p%d, sizeof p%d / sizeof p%d[0]},\n", argv[2 + 2 * i], i, i, i);
    fprintf(out, "};\nconst size_t vm_prompt_count = %d;\n", count);
    if (fclose(out) != 0) {
        fprintf(stderr, "mkprompts: cannot write %s\n", argv[1]);
        return 1;
    }
    return 0;
}
