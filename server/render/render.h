/* The JSON of the REST resources that sipbx also sends elsewhere (webhooks): one rendering
 * of each, so that a call record in a call.ended webhook is the record GET /api/v1/cdrs
 * shows, and a user in user.changed the user GET /api/v1/users/{ext} shows. */
#ifndef SIPBX_RENDER_H
#define SIPBX_RENDER_H

#include <cjson/cJSON.h>

struct store_cdr;
struct store_user;

/** A call record as the API shows it (a new object; NULL when out of memory). */
cJSON *render_cdr(const struct store_cdr *c);
/** A user as the API shows it, without its password (a new object; NULL when out of
 *  memory). */
cJSON *render_user(const struct store_user *u);

#endif
