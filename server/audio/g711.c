/* G.711 (ITU-T, 1972): mu-law and A-law companding of 16-bit linear samples, computed as the
 * ITU-T's reference implementation (G.191, g711.c) does: segment search, 13/14-bit magnitudes,
 * negative samples by their one's complement. Decoding goes through two tables of 256 entries
 * made at the first call. */
#include "audio/audio.h"

#include <pthread.h>

/* Added before the segment search, so that each segment starts at a power of 2. */
#define ULAW_BIAS 0x84
#define ULAW_CLIP 32635

static int16_t ulaw_table[256], alaw_table[256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static int16_t ulaw_to_linear(uint8_t u)
{
    u = (uint8_t)~u;
    int t = ((u & 0x0F) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    return (int16_t)((u & 0x80) ? (ULAW_BIAS - t) : (t - ULAW_BIAS));
}

static int16_t alaw_to_linear(uint8_t a)
{
    a ^= 0x55;
    int t = (a & 0x0F) << 4;
    int seg = (a & 0x70) >> 4;
    if (seg == 0)
        t += 8;
    else if (seg == 1)
        t += 0x108;
    else
        t = (t + 0x108) << (seg - 1);
    return (int16_t)((a & 0x80) ? t : -t);
}

static void make_tables(void)
{
    for (int i = 0; i < 256; i++) {
        ulaw_table[i] = ulaw_to_linear((uint8_t)i);
        alaw_table[i] = alaw_to_linear((uint8_t)i);
    }
}

/* The segment (0..7) of a magnitude: the position of its highest bit above bit 7 (mu-law,
 * after the bias) or bit 8 (A-law). */
static int segment(int v, int base)
{
    int seg = 0;
    for (v >>= base; v > 1 && seg < 7; v >>= 1)
        seg++;
    return seg;
}

static uint8_t linear_to_ulaw(int16_t sample)
{
    int v = sample, mask = 0xFF;
    if (v < 0) {
        v = ~v;
        mask = 0x7F;
    }
    if (v > ULAW_CLIP)
        v = ULAW_CLIP;
    v += ULAW_BIAS;
    int seg = segment(v, 7);
    int code = (seg << 4) | ((v >> (seg + 3)) & 0x0F);
    return (uint8_t)(code ^ mask);
}

static uint8_t linear_to_alaw(int16_t sample)
{
    int v = sample, mask = 0xD5; /* sign bit set for positive samples, even bits inverted */
    if (v < 0) {
        v = -v - 1;
        mask = 0x55;
    }
    if (v > 32767)
        v = 32767;
    int code;
    if (v < 256) {
        code = v >> 4;
    } else {
        int seg = segment(v, 8) + 1;
        code = (seg << 4) | ((v >> (seg + 3)) & 0x0F);
    }
    return (uint8_t)(code ^ mask);
}

uint8_t audio_encode(enum audio_law law, int16_t sample)
{
    return law == AUDIO_PCMA ? linear_to_alaw(sample) : linear_to_ulaw(sample);
}

int16_t audio_decode(enum audio_law law, uint8_t code)
{
    pthread_once(&tables_once, make_tables);
    return law == AUDIO_PCMA ? alaw_table[code] : ulaw_table[code];
}

uint8_t audio_silence(enum audio_law law)
{
    return law == AUDIO_PCMA ? 0xD5 : 0xFF;
}
