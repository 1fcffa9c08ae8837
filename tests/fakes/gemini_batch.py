"""The fake Gemini's Batch API routes: create (inlined requests only, within the byte limit),
get, cancel and delete, list, and the long-running operation a batch is reported as."""

from __future__ import annotations

import asyncio
import json
import secrets
import string

from aiohttp import web

from tests.fakes.gemini_replies import Reply, ok
from tests.fakes.gemini_wire import (
    BATCH_INLINE_LIMIT,
    BATCH_TYPE,
    FINISHED,
    GRPC_CODES,
    MESSAGES,
    MODELS,
    FakeBatch,
    RecordedRequest,
    _now,
    error_body,
)


class BatchApi:
    """Part of FakeGemini (tests/fakes/gemini_server.py), which holds the state it uses."""

    async def _create_batch(self, request: web.Request, model: str) -> web.Response:
        self.batch_creates += 1
        raw = await request.read()
        if len(raw) > BATCH_INLINE_LIMIT:  # Google's front end measures the body before reading it
            return self._json(
                error_body(400, message=(f"Request payload size exceeds the limit: {BATCH_INLINE_LIMIT} bytes.")), 400
            )
        try:
            body = json.loads(raw)
            spec = body.get("batch") or {}
            items = ((spec.get("inputConfig") or {}).get("requests") or {}).get("requests") or []
            recs = [self._record(request, model, item["request"]) for item in items]
        except (ValueError, AttributeError, KeyError, TypeError):
            return self._bad_json()
        if (resp := self._key_error(request)) is not None:
            return resp
        if model not in MODELS:
            return self._json(
                error_body(
                    404,
                    message=(
                        f"models/{model} is not found for API version {request.match_info['version']}, or is"
                        " not supported for batchGenerateContent. Call ListModels to see the list of"
                        " available models and their supported methods."
                    ),
                ),
                404,
            )
        if not recs:
            return self._json(error_body(400), 400)
        for rec in recs:  # one invalid request fails the whole batch, with generateContent's message
            if (resp := self._invalid(rec)) is not None:
                return resp
        reply = self._batch_create_replies.popleft() if self._batch_create_replies else ok()
        if reply.kind == "hang":
            await asyncio.sleep(3600)
        if reply.kind == "error":
            return self._error(reply, model)
        now = _now()
        job = FakeBatch(
            id="".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(36)),
            model=model,
            display_name=spec.get("displayName"),
            body=body,
            requests=recs,
            create_time=now,
            update_time=now,
        )
        self.batches[job.id] = job
        return self._json(self._operation(job))

    def _find_batch(self, request: web.Request, batch_id: str) -> FakeBatch | web.Response:
        """The batch, or the error response (bad key, unknown id) to send instead."""
        if (resp := self._key_error(request)) is not None:
            return resp
        if batch_id not in self.batches:
            return self._json(error_body(404), 404)
        return self.batches[batch_id]

    async def _get_batch(self, request: web.Request) -> web.Response:
        self.batch_gets += 1
        batch = self._find_batch(request, request.match_info["id"])
        if isinstance(batch, web.Response):
            return batch
        if self.auto_finish_batches and batch.state not in FINISHED:
            self.finish_batch(batch.id)
        return self._json(self._operation(batch))

    async def _batch_call(self, request: web.Request) -> web.Response:
        batch_id, _, method = request.match_info["call"].partition(":")
        if method != "cancel":
            raise web.HTTPNotFound()
        batch = self._find_batch(request, batch_id)
        if isinstance(batch, web.Response):
            return batch
        if batch.state not in FINISHED:
            self._move(batch, "BATCH_STATE_CANCELLED")
        return self._json({})  # google.protobuf.Empty

    async def _list_batches(self, request: web.Request) -> web.Response:
        if (resp := self._key_error(request)) is not None:
            return resp
        try:  # the page token is the offset of the page's first batch
            size = int(request.query.get("pageSize") or 0) or 50
            start = int(request.query.get("pageToken") or 0)
        except ValueError:
            return self._json(error_body(400), 400)
        jobs = list(self.batches.values())
        body = {"operations": [self._operation(b) for b in jobs[start : start + size]]}
        if start + size < len(jobs):
            body["nextPageToken"] = str(start + size)
        return self._json(body)

    def _operation(self, batch: FakeBatch) -> dict:
        """The long-running Operation a batch is reported as (create, get and list)."""
        n, failed = len(batch.requests), sum("error" in r for r in batch.responses)
        stats = {"requestCount": str(n)}  # int64 is a JSON string; zero counts are left out
        if batch.state == "BATCH_STATE_SUCCEEDED":
            stats |= {
                k: str(v) for k, v in (("successfulRequestCount", n - failed), ("failedRequestCount", failed)) if v
            }
        elif batch.state not in FINISHED:
            stats["pendingRequestCount"] = str(n)
        metadata = {
            "@type": BATCH_TYPE + "GenerateContentBatch",
            "model": f"models/{batch.model}",
            **({"displayName": batch.display_name} if batch.display_name is not None else {}),
            "createTime": batch.create_time,
            "updateTime": batch.update_time,
            **({"endTime": batch.end_time} if batch.end_time else {}),
            "batchStats": stats,
            "state": batch.state,
            "name": batch.name,
        }
        operation = {"name": batch.name, "metadata": metadata}
        if batch.state in FINISHED:
            operation["done"] = True
        if batch.state == "BATCH_STATE_SUCCEEDED":
            inlined = {"inlinedResponses": {"inlinedResponses": batch.responses}}
            metadata["output"] = inlined
            operation["response"] = {"@type": BATCH_TYPE + "GenerateContentBatchOutput", **inlined}
        return operation

    def _inlined(self, reply: Reply, rec: RecordedRequest) -> dict:
        """One request's entry in a batch's inlinedResponses (the service echoes no metadata)."""
        if reply.kind in ("hang", "drop"):
            raise ValueError(f"{reply.kind}() has no meaning inside a batch")
        if reply.kind == "error":
            return {
                "error": {
                    "code": GRPC_CODES.get(reply.code, 2),  # 2: UNKNOWN
                    "message": reply.message or MESSAGES.get(reply.code, "Unknown error."),
                }
            }
        return {"response": self._answer(reply, rec)}
