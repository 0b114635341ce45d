/* WAV files: the header of what voicemail writes, and the reader of what users upload (and
 * of what espeak-ng makes at build time), which turns any common WAV into 8 kHz mono 16-bit
 * samples; the rate converter, tones and a loudness measure. */
#include "audio/audio.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAVE_PCM        1
#define WAVE_FLOAT      3
#define WAVE_ALAW       6
#define WAVE_MULAW      7
#define WAVE_EXTENSIBLE 0xFFFE
#define MAX_CHANNELS    8
#define RATE_MIN        4000
#define RATE_MAX        192000
/* Half the length of the resampling filter, in zero crossings of its sinc: 16 keeps the
 * stop band below -70 dB with the Blackman window. */
#define SINC_ZEROS 16

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v & 0xFFFF);
    put16(p + 2, v >> 16);
}

static unsigned get16(const uint8_t *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static uint32_t get32(const uint8_t *p)
{
    return get16(p) | (uint32_t)get16(p + 2) << 16;
}

void audio_wav_header(uint8_t out[AUDIO_WAV_HEADER], size_t nsamples)
{
    uint32_t data = (uint32_t)(nsamples * 2);
    memcpy(out, "RIFF", 4);
    put32(out + 4, 36 + data);
    memcpy(out + 8, "WAVEfmt ", 8);
    put32(out + 16, 16);
    put16(out + 20, WAVE_PCM);
    put16(out + 22, 1);              /* channels */
    put32(out + 24, AUDIO_RATE);     /* samples per second */
    put32(out + 28, AUDIO_RATE * 2); /* bytes per second */
    put16(out + 32, 2);              /* block align */
    put16(out + 34, 16);             /* bits per sample */
    memcpy(out + 36, "data", 4);
    put32(out + 40, data);
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return EINVAL;
}

/* One sample of a frame, as a float in -1..1. */
static float sample_at(const uint8_t *p, int format, int bits)
{
    switch (format) {
    case WAVE_ALAW:
        return audio_decode(AUDIO_PCMA, p[0]) / 32768.0f;
    case WAVE_MULAW:
        return audio_decode(AUDIO_PCMU, p[0]) / 32768.0f;
    case WAVE_FLOAT: {
        float f;
        uint32_t u = get32(p);
        memcpy(&f, &u, sizeof f);
        return isfinite(f) ? (f > 1 ? 1 : f < -1 ? -1 : f) : 0;
    }
    default:
        break;
    }
    switch (bits) {
    case 8:
        return (p[0] - 128) / 128.0f;
    case 16:
        return (int16_t)get16(p) / 32768.0f;
    case 24: {
        int32_t v = (int32_t)((uint32_t)p[0] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 24);
        return (float)(v / 2147483648.0);
    }
    default:
        return (float)((int32_t)get32(p) / 2147483648.0);
    }
}

int audio_wav_read(const void *data, size_t len, int16_t **out, size_t *nsamples, char *err,
                   size_t errlen)
{
    const uint8_t *d = data;
    if (len < 12 || memcmp(d, "RIFF", 4) != 0 || memcmp(d + 8, "WAVE", 4) != 0)
        return fail(err, errlen, "not a WAV file (no RIFF/WAVE header)");
    const uint8_t *fmt = NULL, *pcm = NULL;
    size_t fmt_len = 0, pcm_len = 0;
    for (size_t off = 12; off + 8 <= len;) {
        uint32_t size = get32(d + off + 4);
        const uint8_t *body = d + off + 8;
        size_t avail = len - off - 8;
        if (memcmp(d + off, "fmt ", 4) == 0 && !fmt) {
            fmt = body;
            fmt_len = size < avail ? size : avail;
        } else if (memcmp(d + off, "data", 4) == 0 && !pcm) {
            /* Writers that stream (espeak-ng to a pipe) leave the size at its maximum:
             * the data then runs to the end of the file. */
            pcm = body;
            pcm_len = size < avail ? size : avail;
        }
        if (size > avail)
            break;
        off += 8 + (size_t)size + (size & 1); /* chunks are padded to an even length */
    }
    if (!fmt || fmt_len < 16)
        return fail(err, errlen, "not a WAV file (no format chunk)");
    if (!pcm)
        return fail(err, errlen, "a WAV file without audio (no data chunk)");
    int format = (int)get16(fmt), channels = (int)get16(fmt + 2);
    uint32_t rate = get32(fmt + 4);
    int align = (int)get16(fmt + 12), bits = (int)get16(fmt + 14);
    if (format == WAVE_EXTENSIBLE && fmt_len >= 26)
        format = (int)get16(fmt + 24); /* the sub-format GUID starts with the format tag */
    int ok = (format == WAVE_PCM && (bits == 8 || bits == 16 || bits == 24 || bits == 32)) ||
             (format == WAVE_FLOAT && bits == 32) ||
             ((format == WAVE_ALAW || format == WAVE_MULAW) && bits == 8);
    if (!ok)
        return fail(err, errlen,
                    "unsupported WAV format (tag %d, %d bits): use PCM of 8 to 32 bits, float, "
                    "A-law or mu-law",
                    format, bits);
    if (channels < 1 || channels > MAX_CHANNELS)
        return fail(err, errlen, "unsupported WAV file: %d channels (1 to %d)", channels,
                    MAX_CHANNELS);
    if (rate < RATE_MIN || rate > RATE_MAX)
        return fail(err, errlen, "unsupported sample rate %u Hz (%d to %d)", (unsigned)rate,
                    RATE_MIN, RATE_MAX);
    int bytes = bits / 8;
    if (align != channels * bytes)
        return fail(err, errlen, "damaged WAV file: block size %d for %d channels of %d bits",
                    align, channels, bits);
    size_t frames = pcm_len / (size_t)align;
    if (frames == 0)
        return fail(err, errlen, "the WAV file holds no samples");
    float *mono = malloc(frames * sizeof *mono);
    if (!mono)
        return ENOMEM;
    for (size_t i = 0; i < frames; i++) {
        const uint8_t *f = pcm + i * (size_t)align;
        float sum = 0;
        for (int c = 0; c < channels; c++)
            sum += sample_at(f + c * bytes, format, bits);
        mono[i] = sum / (float)channels;
    }
    int rc = audio_resample(mono, frames, (int)rate, out, nsamples);
    free(mono);
    return rc;
}

/* The Blackman window over -1..1 (0 outside). */
static double blackman(double x)
{
    if (x <= -1 || x >= 1)
        return 0;
    double t = M_PI * (x + 1); /* 0 .. 2 pi */
    return 0.42 - 0.5 * cos(t) + 0.08 * cos(2 * t);
}

static int16_t clip16(double v)
{
    v = v * 32768.0;
    if (v > 32767)
        return 32767;
    if (v < -32768)
        return -32768;
    return (int16_t)lrint(v);
}

/* The filter is tabulated at this many points per input sample and read with linear
 * interpolation: the sines and cosines are computed once per call, not once per tap. */
#define KERNEL_RES 256

int audio_resample(const float *in, size_t n, int in_rate, int16_t **out, size_t *nout)
{
    if (in_rate < RATE_MIN || in_rate > RATE_MAX)
        return EINVAL;
    double step = (double)in_rate / AUDIO_RATE; /* input samples per output sample */
    size_t m = (size_t)((double)n / step);
    int16_t *o = malloc((m ? m : 1) * sizeof *o);
    if (!o)
        return ENOMEM;
    if (in_rate == AUDIO_RATE) {
        for (size_t i = 0; i < m; i++)
            o[i] = clip16(in[i]);
        *out = o;
        *nout = m;
        return 0;
    }
    /* Cut off at 0.9 of the lower Nyquist frequency: 3.6 kHz when going down to 8 kHz (the
     * telephone band ends at 3.4), the input's own when going up. */
    double fc = 0.45 * (step > 1 ? 1 / step : 1); /* cycles per input sample */
    double half = SINC_ZEROS / (2 * fc);          /* filter half-length, input samples */
    size_t nk = (size_t)(half * KERNEL_RES) + 2;
    float *kernel = malloc(nk * sizeof *kernel);
    if (!kernel) {
        free(o);
        return ENOMEM;
    }
    for (size_t j = 0; j < nk; j++) {
        double x = (double)j / KERNEL_RES;
        double sinc = j == 0 ? 1 : sin(2 * M_PI * fc * x) / (2 * M_PI * fc * x);
        kernel[j] = (float)(2 * fc * sinc * blackman(x / half));
    }
    for (size_t i = 0; i < m; i++) {
        double t = (double)i * step;
        long lo = (long)ceil(t - half), hi = (long)floor(t + half);
        if (lo < 0)
            lo = 0;
        if (hi > (long)n - 1)
            hi = (long)n - 1;
        double acc = 0;
        for (long k = lo; k <= hi; k++) {
            double pos = fabs(t - (double)k) * KERNEL_RES;
            size_t j = (size_t)pos;
            if (j + 1 >= nk)
                continue;
            double f = pos - (double)j;
            acc += in[k] * (kernel[j] + f * (kernel[j + 1] - kernel[j]));
        }
        o[i] = clip16(acc);
    }
    free(kernel);
    *out = o;
    *nout = m;
    return 0;
}

void audio_tone(int16_t *out, size_t n, double freq, double amp)
{
    size_t ramp = AUDIO_RATE / 200; /* 5 ms */
    for (size_t i = 0; i < n; i++) {
        double g = 1;
        if (i < ramp)
            g = (double)i / (double)ramp;
        else if (n - i <= ramp)
            g = (double)(n - 1 - i) / (double)ramp;
        out[i] = (int16_t)lrint(amp * g * sin(2 * M_PI * freq * (double)i / AUDIO_RATE));
    }
}

int audio_level(const int16_t *s, size_t n)
{
    if (n == 0)
        return 0;
    long sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += s[i] < 0 ? -(long)s[i] : s[i];
    return (int)(sum / (long)n);
}
