"""A loopback fake of Gemini on Vertex AI (aiplatform.googleapis.com), built on FakeGemini.

The unmodified google-genai SDK reaches it with ``vertexai=True, project=..., location=...``
and ``HttpOptions(base_url=fake.url)``; it then calls, on API version v1beta1:

- ``POST /v1beta1/projects/{P}/locations/{L}/publishers/google/models/{M}:generateContent``
- ``GET /v1beta1/publishers/google/models`` (``models.list()``: Google's base models, listed
  without a project or location and named ``publishers/google/models/{M}``)

Answers and scripting are FakeGemini's (``fake.script(ok(), error(429), ...)``). What
Vertex refuses, the fake refuses with Vertex's JSON errors:

- no OAuth access token, or a wrong one: 401 UNAUTHENTICATED;
- an API key (``x-goog-api-key``) on a project path: 401, "API keys are not supported by
  this API" (Vertex wants a principal there, not a key);
- another project than ``fake.project``: 403 PERMISSION_DENIED;
- a Gemini 3.x model at a location other than ``global``, or an unknown model: 404
  NOT_FOUND, "Publisher Model `projects/P/locations/L/...` was not found";
- an inline image over 7 MB (7 MiB): 400 INVALID_ARGUMENT.

Tests give the SDK credentials without the network through an "authorized_user" file
that already holds an unexpired access token (``write_credentials_file``): google-auth
then never calls the token endpoint.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from tests.fakes.gemini_server import MODELS, FakeGemini, RecordedRequest, Reply, error_body

TOKEN = "ya29.vertex-test-token"
PROJECT = "imagine-test-project"
# Vertex's documented per-file limit for inline data ("7 MB"; its other limits are MiB).
INLINE_IMAGE_LIMIT = 7 * 1024 * 1024
# Gemini 3.x image models are served only from the global endpoint.
GLOBAL_ONLY_PREFIX = "gemini-3"
_API_KEY_REFUSED = (
    "API keys are not supported by this API. Expected OAuth2 access token or other "
    "authentication credentials that assert a principal. See "
    "https://cloud.google.com/docs/authentication"
)
_BAD_TOKEN = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def write_credentials_file(path: Path, token: str = TOKEN) -> Path:
    """An Application Default Credentials file (authorized_user) whose access token is valid
    until 2099, so google-auth uses it as is and never refreshes it over the network."""
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "fake-client.apps.googleusercontent.com",
                "client_secret": "fake-secret",
                "refresh_token": "fake-refresh-token",
                "token": token,
                "expiry": "2099-01-01T00:00:00Z",
            }
        )
    )
    return path


def _error_info(reason: str, method: str) -> list[dict]:
    return [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": "googleapis.com",
            "metadata": {"method": f"google.cloud.aiplatform.v1beta1.{method}", "service": "aiplatform.googleapis.com"},
        }
    ]


class FakeVertex(FakeGemini):
    label = "fake Vertex AI"

    def __init__(self, *, project: str = PROJECT, token: str = TOKEN, **kwargs) -> None:
        super().__init__(**kwargs)
        self.project = project
        self.token = token
        # (method, path, headers lower-cased) of every call, refused ones included.
        self.calls: list[tuple[str, str, dict[str, str]]] = []

    def summary(self) -> str:
        return "\n".join(f"{method} {path}" for method, path, _ in self.calls)

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._log_call], client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1beta1/publishers/google/models", self._list_models)
        app.router.add_post(
            "/v1beta1/projects/{project}/locations/{location}/publishers/google/models/{call}", self._project_model_call
        )
        return app

    @web.middleware
    async def _log_call(self, request: web.Request, handler):
        self.calls.append((request.method, request.path, {k.lower(): v for k, v in request.headers.items()}))
        try:
            return await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            return self._json(error_body(404, message="Method not found."), 404)

    def _key_error(self, request: web.Request) -> web.Response | None:
        """Vertex's authentication: an OAuth access token, never an API key on a project path."""
        method = (
            "ModelGardenService.ListPublisherModels" if request.method == "GET" else "PredictionService.GenerateContent"
        )
        if "x-goog-api-key" in request.headers or "key" in request.query:
            return self._json(
                error_body(401, message=_API_KEY_REFUSED, details=_error_info("CREDENTIALS_MISSING", method)), 401
            )
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._json(
                error_body(401, message=_BAD_TOKEN, details=_error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED", method)), 401
            )
        return None

    def _model_json(self, model: str) -> dict:
        return {
            "name": f"publishers/google/models/{model}",
            "versionId": "001",
            "openSourceCategory": "PROPRIETARY",
            "launchStage": "GA",
        }

    async def _list_models(self, request: web.Request) -> web.Response:
        return self._key_error(request) or self._json({"publisherModels": [self._model_json(m) for m in MODELS]})

    async def _project_model_call(self, request: web.Request) -> web.Response:
        model, _, method = request.match_info["call"].partition(":")
        if method != "generateContent":
            raise web.HTTPNotFound()
        if (resp := self._key_error(request) or self._resource_error(request, model)) is not None:
            return resp
        return await self._generate(request, model)

    def _resource_error(self, request: web.Request, model: str) -> web.Response | None:
        project, location = request.match_info["project"], request.match_info["location"]
        resource = f"projects/{project}/locations/{location}/publishers/google/models/{model}"
        if project != self.project:
            return self._json(
                error_body(
                    403,
                    message=(
                        f"Permission 'aiplatform.endpoints.predict' denied on resource "
                        f"'//aiplatform.googleapis.com/{resource}' (or it may not exist)."
                    ),
                    details=_error_info("IAM_PERMISSION_DENIED", "PredictionService.GenerateContent"),
                ),
                403,
            )
        if model not in MODELS or (model.startswith(GLOBAL_ONLY_PREFIX) and location != "global"):
            return self._json(
                error_body(
                    404,
                    message=(
                        f"Publisher Model `{resource}` was not found or your project does not have access to it. "
                        "Please ensure you are using a valid model version. For more information, see: "
                        "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions"
                    ),
                ),
                404,
            )
        return None

    def _invalid(self, rec: RecordedRequest) -> web.Response | None:
        for data in rec.input_images:
            if len(data) > INLINE_IMAGE_LIMIT:
                return self._json(
                    error_body(
                        400,
                        message=(
                            f"The file size of inline data is {len(data)}, which exceeds max allowed file size of "
                            f"{INLINE_IMAGE_LIMIT} for image files. Reduce the file size by lowering the image "
                            "resolution."
                        ),
                    ),
                    400,
                )
        return super()._invalid(rec)

    def _answer(self, reply: Reply, rec: RecordedRequest) -> dict:
        # Vertex stamps each answer with its creation time and the usage with its traffic type.
        body = super()._answer(reply, rec)
        body["usageMetadata"]["trafficType"] = "ON_DEMAND"
        body["createTime"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return body
