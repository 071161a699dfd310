"""drf-spectacular hook: the error responses that every operation can give, documented once."""

_UNSAFE = {"post", "put", "patch", "delete"}


def document_common_errors(result: dict, generator, request, public) -> dict:
    """Any query string can be refused (400: portal.core.query); each operation needs a
    login (401) and is throttled (429); a POST can fail its CSRF check under session
    authentication (403) or be too large (413); any operation can fail (500, JSON like the
    rest: portal.core.views); an operation whose path names an object answers
    404 when there is none that the caller may see. Documented where an operation has not
    described them itself."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", _error_schema())
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            codes = {
                "400": "a parameter or body that cannot be read (a NUL character, say)",
                "401": "not logged in, or bad credentials",
                "429": "too many requests or failed logins: wait and retry",
                "500": "the portal failed to answer (logged; no detail of the failure)",
            }
            if method in _UNSAFE:
                codes["403"] = "not allowed for your role (or a failed CSRF check)"
                codes["413"] = "the request body is larger than the portal accepts"
            if "{" in path:
                codes["404"] = "not found, or not on one of your sites"
            for code, description in codes.items():
                responses.setdefault(code, {"content": error, "description": description})
    return result


def _error_schema() -> dict:
    return {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    }
