# Writes OUT, a C file holding the OpenAPI description IN (docs/openapi.json) as the bytes
# GET /api/v1/openapi.json serves (server/http/openapi.c). Run by the build; see
# CMakeLists.txt. The JSON is checked on the way: a document that does not parse fails the
# build instead of being served.
file(READ ${IN} text)
if(NOT CMAKE_VERSION VERSION_LESS 3.19) # string(JSON) is newer than the 3.18 we require
  string(JSON version ERROR_VARIABLE bad GET "${text}" openapi)
  if(bad)
    message(FATAL_ERROR "${IN} is not valid JSON: ${bad}")
  endif()
endif()
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR n "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
file(WRITE ${OUT}
     "/* Generated from docs/openapi.json by server/http/openapi.cmake: do not edit. */\n"
     "#include <stddef.h>\n\n"
     "extern const char http_openapi_doc[];\nextern const size_t http_openapi_doc_len;\n"
     "const char http_openapi_doc[] = {${hex} 0};\n"
     "const size_t http_openapi_doc_len = ${n};\n")
