/* /api/v1/openapi.json: the OpenAPI 3.1 description of this API (docs/openapi.json, built
 * into the binary), for generating clients. Served without authentication: it describes
 * the API, holds none of its data, and the package installs the same file. */
#include "http/http_int.h"

#include <stdlib.h>
#include <string.h>

void api_openapi_get(struct http_req *r)
{
    char *copy = malloc(http_openapi_doc_len);
    if (!copy) {
        http_error(r, 500, "internal", "out of memory");
        return;
    }
    memcpy(copy, http_openapi_doc, http_openapi_doc_len);
    http_text(r, 200, "application/json", copy, http_openapi_doc_len);
}
