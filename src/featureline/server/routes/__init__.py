"""The feature server's routes, one module per concern; each has `routes(ctx) -> list[Route]`.

    features   POST /features/online, POST /get-online-features (Feast)   online reads
    push       POST /push/{view}, POST /push (Feast)                       writes
    models     POST /models/{name}/predict, GET /models                    model endpoints
    ops        GET /health, /metrics, /openapi.json, /docs                 operations

A new concern (a UI, say) is a new module here, listed in `featureline.server.app.ROUTE_MODULES`;
the dispatcher (`featureline.server._dispatch`) gives it the Host check, authentication, error
mapping and metrics every route gets.
"""
