"""`featureline.auth` exports its public surface (issue 11): every public class of its modules,
and exactly what `__all__` names (httpx's `test_exported_members`)."""

from __future__ import annotations

import inspect

import featureline.auth as auth
from featureline.auth import _audit, _authorizer, _jwt, _policy, _principal, _tokens

MODULES = (_audit, _authorizer, _jwt, _policy, _principal, _tokens)


def test_every_public_class_of_the_auth_modules_is_exported() -> None:
    classes = {
        name
        for m in MODULES
        for name, obj in vars(m).items()
        if inspect.isclass(obj) and obj.__module__ == m.__name__ and not name.startswith("_")
    }
    assert "JwtPrincipal" in classes
    assert classes - set(auth.__all__) == set()


def test_all_names_what_the_package_exports() -> None:
    exported = {n for n in dir(auth) if not n.startswith("_")}
    assert set(auth.__all__) == exported
    assert auth.JwtPrincipal is _jwt.JwtPrincipal
    assert auth.DATA_ROUTES is _authorizer.DATA_ROUTES
