/* Unit tests of server/audio: G.711 against values of ITU-T's reference (G.191), WAV files
 * of every supported shape and the refused ones, the rate converter (pass band kept, what
 * would alias removed), tones and the loudness measure. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "audio/audio.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- G.711 ---- */

static void test_g711_known_values(void **state)
{
    (void)state;
    /* From G.191's g711.c (ulaw_compress, alaw_compress and their expand functions). */
    assert_int_equal(audio_encode(AUDIO_PCMU, 0), 0xFF);
    assert_int_equal(audio_encode(AUDIO_PCMU, -1), 0x7F);
    assert_int_equal(audio_encode(AUDIO_PCMU, 32767), 0x80);
    assert_int_equal(audio_encode(AUDIO_PCMU, -32768), 0x00);
    assert_int_equal(audio_encode(AUDIO_PCMU, 1000), 0xCE);
    assert_int_equal(audio_encode(AUDIO_PCMU, -1000), 0x4E);
    assert_int_equal(audio_encode(AUDIO_PCMA, 0), 0xD5);
    assert_int_equal(audio_encode(AUDIO_PCMA, -1), 0x55);
    assert_int_equal(audio_encode(AUDIO_PCMA, 32767), 0xAA);
    assert_int_equal(audio_encode(AUDIO_PCMA, -32768), 0x2A);
    assert_int_equal(audio_encode(AUDIO_PCMA, 1000), 0xFA);
    assert_int_equal(audio_decode(AUDIO_PCMU, 0xFF), 0);
    assert_int_equal(audio_decode(AUDIO_PCMU, 0x80), 32124);
    assert_int_equal(audio_decode(AUDIO_PCMU, 0x00), -32124);
    assert_int_equal(audio_decode(AUDIO_PCMU, 0xCE), 988);
    assert_int_equal(audio_decode(AUDIO_PCMA, 0xD5), 8);
    assert_int_equal(audio_decode(AUDIO_PCMA, 0xAA), 32256);
    assert_int_equal(audio_decode(AUDIO_PCMA, 0x2A), -32256);
    assert_int_equal(audio_decode(AUDIO_PCMA, 0xFA), 1008);
    assert_int_equal(audio_silence(AUDIO_PCMU), 0xFF);
    assert_int_equal(audio_silence(AUDIO_PCMA), 0xD5);
}

static void test_g711_round_trips(void **state)
{
    (void)state;
    for (int law = 0; law < 2; law++) {
        enum audio_law l = law ? AUDIO_PCMA : AUDIO_PCMU;
        /* Every code is the code of the value it decodes to (mu-law's "negative zero" 0x7F
         * decodes to 0, whose code is 0xFF). */
        for (int c = 0; c < 256; c++)
            if (!(l == AUDIO_PCMU && c == 0x7F))
                assert_int_equal(audio_encode(l, audio_decode(l, (uint8_t)c)), c);
        /* Every sample comes back within half a step of its segment, and the codes are
         * monotonic in the sample. */
        int prev = audio_decode(l, audio_encode(l, -32768));
        for (int x = -32768; x <= 32767; x++) {
            int y = audio_decode(l, audio_encode(l, (int16_t)x));
            int ax = x < 0 ? -x : x;
            int bound = ax > 32000 ? 1100 : 16 + ax / 32;
            if (abs(y - x) > bound)
                fail_msg("law %d: %d came back as %d", l, x, y);
            assert_true(y >= prev);
            prev = y;
        }
    }
}

/* ---- WAV ---- */

struct wav {
    uint8_t b[1 << 20];
    size_t n;
};

static void put(struct wav *w, const void *p, size_t n)
{
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void put16(struct wav *w, unsigned v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(w, b, 2);
}

static void put32(struct wav *w, uint32_t v)
{
    put16(w, v & 0xFFFF);
    put16(w, v >> 16);
}

/* A WAV of frames frames (bits per sample, format tag, channels, rate) whose samples are
 * sample(i, channel) in -1..1; extra: a LIST chunk of odd size before "fmt ". */
static void make_wav(struct wav *w, int format, int bits, int channels, uint32_t rate,
                     size_t frames, double (*sample)(size_t i, int ch), int extra, int streamed)
{
    w->n = 0;
    put(w, "RIFF", 4);
    put32(w, 0);
    put(w, "WAVE", 4);
    if (extra) {
        put(w, "LIST", 4);
        put32(w, 3);
        put(w, "abc\0", 4); /* padded to even */
    }
    put(w, "fmt ", 4);
    int ext = format == 0xFFFE;
    put32(w, ext ? 40 : 16);
    put16(w, (unsigned)format);
    put16(w, (unsigned)channels);
    put32(w, rate);
    put32(w, rate * (uint32_t)(channels * bits / 8));
    put16(w, (unsigned)(channels * bits / 8));
    put16(w, (unsigned)bits);
    if (ext) {
        put16(w, 22);
        put16(w, (unsigned)bits);
        put32(w, 0);
        uint8_t guid[16] = {1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71};
        put(w, guid, 16); /* KSDATAFORMAT_SUBTYPE_PCM */
    }
    put(w, "data", 4);
    put32(w, streamed ? 0xFFFFFFFFu : (uint32_t)(frames * (size_t)(channels * bits / 8)));
    for (size_t i = 0; i < frames; i++) {
        for (int c = 0; c < channels; c++) {
            double v = sample(i, c);
            int16_t s16 = (int16_t)lrint(v * 32767);
            switch (format == 0xFFFE ? 1 : format) {
            case 3: {
                float f = (float)v;
                uint32_t u;
                memcpy(&u, &f, 4);
                put32(w, u);
                break;
            }
            case 7: {
                uint8_t code = audio_encode(AUDIO_PCMU, s16);
                put(w, &code, 1);
                break;
            }
            default:
                if (bits == 8) {
                    uint8_t b = (uint8_t)(lrint(v * 127) + 128);
                    put(w, &b, 1);
                } else if (bits == 16) {
                    put16(w, (uint16_t)s16);
                } else if (bits == 24) {
                    int32_t s24 = (int32_t)lrint(v * 8388607);
                    uint8_t b[3] = {(uint8_t)s24, (uint8_t)(s24 >> 8), (uint8_t)(s24 >> 16)};
                    put(w, b, 3);
                } else {
                    put32(w, (uint32_t)(int32_t)lrint(v * 2147483647.0));
                }
            }
        }
    }
}

static double ramp(size_t i, int ch)
{
    (void)ch;
    return ((double)(i % 200) - 100) / 200.0; /* -0.5 .. 0.5 */
}

static double opposite(size_t i, int ch)
{
    return ch ? -ramp(i, 0) * 0.5 : ramp(i, 0);
}

static double sine1k_48k(size_t i, int ch)
{
    (void)ch;
    return 0.5 * sin(2 * M_PI * 1000 * (double)i / 48000);
}

static double sine5k_48k(size_t i, int ch)
{
    (void)ch;
    return 0.5 * sin(2 * M_PI * 5000 * (double)i / 48000);
}

static void test_wav_formats(void **state)
{
    (void)state;
    static struct wav w;
    struct {
        int format, bits, channels, extra, streamed;
        int tolerance; /* of each sample against ramp() * 32767 */
    } cases[] = {
        {1, 16, 1, 0, 0, 1},  {1, 16, 1, 1, 0, 1},   {1, 16, 1, 0, 1, 1},
        {1, 8, 1, 0, 0, 260}, {1, 24, 1, 0, 0, 1},   {1, 32, 1, 0, 0, 1},
        {3, 32, 1, 0, 0, 1},  {7, 8, 1, 0, 0, 1100}, {0xFFFE, 16, 1, 0, 0, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        make_wav(&w, cases[k].format, cases[k].bits, cases[k].channels, 8000, 4000, ramp,
                 cases[k].extra, cases[k].streamed);
        int16_t *out = NULL;
        size_t n = 0;
        char err[160] = "";
        int rc = audio_wav_read(w.b, w.n, &out, &n, err, sizeof err);
        if (rc != 0)
            fail_msg("case %zu: %s", k, err);
        assert_int_equal(n, 4000);
        for (size_t i = 0; i < n; i++) {
            int want = (int)lrint(ramp(i, 0) * 32767);
            if (abs(out[i] - want) > cases[k].tolerance)
                fail_msg("case %zu sample %zu: %d, want %d", k, i, out[i], want);
        }
        free(out);
    }
    /* Stereo: the channels are averaged. */
    make_wav(&w, 1, 16, 2, 8000, 1000, opposite, 0, 0);
    int16_t *out;
    size_t n;
    char err[160];
    assert_int_equal(audio_wav_read(w.b, w.n, &out, &n, err, sizeof err), 0);
    assert_int_equal(n, 1000);
    for (size_t i = 0; i < n; i++)
        assert_true(abs(out[i] - (int)lrint(ramp(i, 0) * 0.25 * 32767)) <= 2);
    free(out);
    /* The header audio_wav_header writes is read back. */
    uint8_t file[AUDIO_WAV_HEADER + 8];
    audio_wav_header(file, 4);
    int16_t four[4] = {1, -2, 300, -32768};
    for (int i = 0; i < 4; i++) {
        file[AUDIO_WAV_HEADER + 2 * i] = (uint8_t)(four[i] & 0xFF);
        file[AUDIO_WAV_HEADER + 2 * i + 1] = (uint8_t)((uint16_t)four[i] >> 8);
    }
    assert_memory_equal(file, "RIFF", 4);
    assert_int_equal(file[4] | file[5] << 8, 36 + 8);
    assert_int_equal(audio_wav_read(file, sizeof file, &out, &n, err, sizeof err), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(out, four, sizeof four);
    free(out);
}

static void test_wav_refused(void **state)
{
    (void)state;
    static struct wav w;
    int16_t *out = NULL;
    size_t n;
    char err[160];
    assert_int_equal(audio_wav_read("RIFX....WAVE", 12, &out, &n, err, sizeof err), EINVAL);
    assert_string_equal(err, "not a WAV file (no RIFF/WAVE header)");
    assert_int_equal(audio_wav_read("RIFF", 4, &out, &n, err, sizeof err), EINVAL);
    assert_int_equal(audio_wav_read("RIFF\0\0\0\0WAVEdata\0\0\0\0", 20, &out, &n, err, sizeof err),
                     EINVAL);
    assert_string_equal(err, "not a WAV file (no format chunk)");
    make_wav(&w, 1, 16, 1, 8000, 10, ramp, 0, 0);
    assert_int_equal(audio_wav_read(w.b, 36, &out, &n, err, sizeof err), EINVAL);
    assert_string_equal(err, "a WAV file without audio (no data chunk)");
    make_wav(&w, 1, 12, 1, 8000, 10, ramp, 0, 0);
    assert_int_equal(audio_wav_read(w.b, w.n, &out, &n, err, sizeof err), EINVAL);
    assert_non_null(strstr(err, "unsupported WAV format (tag 1, 12 bits)"));
    make_wav(&w, 2, 4, 1, 8000, 10, ramp, 0, 0); /* ADPCM */
    assert_int_equal(audio_wav_read(w.b, w.n, &out, &n, err, sizeof err), EINVAL);
    make_wav(&w, 1, 16, 9, 8000, 10, ramp, 0, 0);
    assert_int_equal(audio_wav_read(w.b, w.n, &out, &n, err, sizeof err), EINVAL);
    assert_string_equal(err, "unsupported WAV file: 9 channels (1 to 8)");
    make_wav(&w, 1, 16, 1, 1000000, 10, ramp, 0, 0);
    assert_int_equal(audio_wav_read(w.b, w.n, &out, &n, err, sizeof err), EINVAL);
    assert_string_equal(err, "unsupported sample rate 1000000 Hz (4000 to 192000)");
    make_wav(&w, 1, 16, 1, 8000, 10, ramp, 0, 0);
    w.b[32] = 3; /* block align 3 for 16-bit mono */
    assert_int_equal(audio_wav_read(w.b, w.n, &out, &n, err, sizeof err), EINVAL);
    make_wav(&w, 1, 16, 1, 8000, 0, ramp, 0, 0);
    assert_int_equal(audio_wav_read(w.b, w.n, &out, &n, err, sizeof err), EINVAL);
    assert_string_equal(err, "the WAV file holds no samples");
    assert_null(out);
}

/* ---- rate conversion ---- */

static double rms(const int16_t *s, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)s[i] * s[i];
    return sqrt(sum / (double)n);
}

static void test_resample(void **state)
{
    (void)state;
    static struct wav w;
    int16_t *out;
    size_t n;
    char err[160];
    /* 1 kHz at 48 kHz: the same tone at 8 kHz, as loud, with 1000 zero crossings... a
     * second, i.e. 2000 sign changes. */
    make_wav(&w, 1, 16, 1, 48000, 48000, sine1k_48k, 0, 0);
    assert_int_equal(audio_wav_read(w.b, w.n, &out, &n, err, sizeof err), 0);
    assert_int_equal(n, 8000);
    double level = rms(out + 400, n - 800); /* away from the ends the filter cannot see past */
    assert_true(fabs(level - 0.5 * 32767 / sqrt(2)) < 0.02 * level);
    int changes = 0;
    for (size_t i = 401; i < n - 400; i++)
        changes += (out[i] < 0) != (out[i - 1] < 0);
    assert_true(abs(changes - 2 * (int)(n - 801) / 8) <= 2);
    free(out);
    /* 5 kHz cannot be at 8 kHz: it must not come back as a 3 kHz alias. */
    make_wav(&w, 1, 16, 1, 48000, 48000, sine5k_48k, 0, 0);
    assert_int_equal(audio_wav_read(w.b, w.n, &out, &n, err, sizeof err), 0);
    assert_true(rms(out + 400, n - 800) < 0.5 * 32767 / sqrt(2) / 1000); /* below -60 dB */
    free(out);
    /* Rates that are not a multiple: 44.1 kHz. */
    float *in = calloc(44100, sizeof *in);
    assert_int_equal(audio_resample(in, 44100, 44100, &out, &n), 0);
    assert_int_equal(n, 8000);
    free(out);
    assert_int_equal(audio_resample(in, 100, 3000, &out, &n), EINVAL);
    free(in);
}

static void test_tone_and_level(void **state)
{
    (void)state;
    int16_t t[800];
    audio_tone(t, 800, 1000, 8000);
    assert_int_equal(t[0], 0);
    assert_true(abs(t[799]) < 100); /* ramped down */
    int peak = 0;
    for (int i = 0; i < 800; i++)
        peak = abs(t[i]) > peak ? abs(t[i]) : peak;
    assert_true(peak <= 8000 && peak > 7900);
    /* (0 + .707 + 1 + .707) / 4 of the peak: a 1 kHz sine sampled 8 times a cycle */
    assert_true(abs(audio_level(t + 100, 600) - 4828) < 10);
    int16_t quiet[160] = {0};
    quiet[3] = 100;
    assert_int_equal(audio_level(quiet, 160), 0);
    assert_int_equal(audio_level(quiet, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_g711_known_values), cmocka_unit_test(test_g711_round_trips),
        cmocka_unit_test(test_wav_formats),       cmocka_unit_test(test_wav_refused),
        cmocka_unit_test(test_resample),          cmocka_unit_test(test_tone_and_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
