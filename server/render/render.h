/* The JSON of the REST resources that sipbx also sends elsewhere (events, webhooks, the
 * stored forwards of a record): one rendering of each, so that a call record in a call.ended
 * webhook is the record GET /api/v1/cdrs shows, and a user in user.changed the user GET
 * /api/v1/users/{ext} shows. */
#ifndef SIPBX_RENDER_H
#define SIPBX_RENDER_H

#include <cjson/cJSON.h>

struct sip_call_info;
struct store_cdr;
struct store_user;

/** A call record as the API shows it (a new object; NULL when out of memory). */
cJSON *render_cdr(const struct store_cdr *c);
/** A user as the API shows it, without its password (a new object; NULL when out of
 *  memory). */
cJSON *render_user(const struct store_user *u);

/** A live call as the API and the call events show it (a new object; NULL when out of
 *  memory). */
cJSON *render_call(const struct sip_call_info *c);
/** The forwards a call took, [{"from","to","reason"}, ...], as in a call and its record
 *  (a new array; NULL when out of memory). */
cJSON *render_forwards(const struct sip_call_info *c);

#endif
