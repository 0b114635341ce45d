/* Telephone audio without a codec library: G.711 (mu-law and A-law), WAV files (reading
 * what users upload, writing what voicemail records) and conversion of any common WAV to
 * the 8 kHz mono 16-bit samples sipbx plays and records. Pure functions, any thread. */
#ifndef SIPBX_AUDIO_H
#define SIPBX_AUDIO_H

#include <stddef.h>
#include <stdint.h>

#define AUDIO_RATE 8000 /* samples per second of everything sipbx plays and records */

/** The two G.711 laws, by their static RTP payload type (RFC 3551). */
enum audio_law { AUDIO_PCMU = 0, AUDIO_PCMA = 8 };

/** One linear sample (16-bit) to its G.711 code. */
uint8_t audio_encode(enum audio_law law, int16_t sample);
/** One G.711 code to its linear sample. */
int16_t audio_decode(enum audio_law law, uint8_t code);
/** The code of silence (a zero sample) in law. */
uint8_t audio_silence(enum audio_law law);

/** Bytes of the header audio_wav_header writes. */
#define AUDIO_WAV_HEADER 44

/** Writes the 44-byte header of a WAV file of nsamples 8 kHz mono 16-bit PCM samples. */
void audio_wav_header(uint8_t out[AUDIO_WAV_HEADER], size_t nsamples);

/** Reads a WAV file (len bytes of data: PCM of 8, 16, 24 or 32 bits, 32-bit float, A-law or
 *  mu-law, any number of channels, 4 to 192 kHz) into a new buffer of 8 kHz mono 16-bit
 *  samples (*out, free() it; *nsamples of them): channels are mixed, the rate converted
 *  with a low-pass filter. Returns 0, or EINVAL with one readable phrase in err ("not a WAV
 *  file", "unsupported format: ..."), or ENOMEM. */
int audio_wav_read(const void *data, size_t len, int16_t **out, size_t *nsamples, char *err,
                   size_t errlen);

/** Converts n samples at rate in_rate (4000..192000) to a new buffer at AUDIO_RATE (*out,
 *  free() it; *nout samples), with a windowed-sinc low-pass below the lower Nyquist
 *  frequency. Returns 0, EINVAL (rate out of range) or ENOMEM. */
int audio_resample(const float *in, size_t n, int in_rate, int16_t **out, size_t *nout);

/** Fills out with n samples of a sine of freq Hz at amplitude amp (0..32767), with 5 ms
 *  ramps at both ends so it starts and stops without a click. */
void audio_tone(int16_t *out, size_t n, double freq, double amp);

/** Mean absolute value of n samples (a cheap loudness: speech is in the thousands, a quiet
 *  line below a hundred). */
int audio_level(const int16_t *s, size_t n);

#endif
