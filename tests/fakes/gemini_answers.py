"""The bodies of the fake Gemini's generateContent answers, shaped as Google shapes them: the
400s the real API gives for what it refuses, its quota and retry errors, and a success's parts
(Pro's thinking first, the 3.x signatures) with its usageMetadata."""

from __future__ import annotations

import base64
import hashlib
import secrets

from aiohttp import web

from tests.fakes.gemini_replies import _ANSWER_TEXT, _DEFAULT_THOUGHTS, Reply
from tests.fakes.gemini_wire import (
    ASPECTS,
    IMAGE_INPUT_TOKENS,
    KNOWN_TIERS,
    MESSAGES,
    SIZES,
    TIERS,
    RecordedRequest,
    _family,
    _free_tier_zero,
    _image_tokens,
    _png_b64,
    _tier,
    _tokens,
    error_body,
)


class Answers:
    """Part of FakeGemini (tests/fakes/gemini_server.py), which holds the state it uses
    (``_json``, ``image_scale``, ``sent_usage``); FakeVertex overrides ``_invalid`` and ``_answer``."""

    def _invalid(self, rec: RecordedRequest) -> web.Response | None:
        """Reject what the real API rejects, with its messages (they carry no details)."""
        if not rec.body.get("contents"):
            msg = "* GenerateContentRequest.contents: contents is not specified\n"
        elif rec.aspect_ratio is not None and rec.aspect_ratio not in ASPECTS:
            allowed = [f"'{a}'" for a in sorted(ASPECTS)]
            msg = (
                "* GenerateContentRequest.generation_config.image_config.aspect_ratio: aspect_ratio"
                f" must be one of {', '.join(allowed[:-1])}, or {allowed[-1]}.\n"
            )
        elif rec.image_size is not None and rec.image_size not in SIZES:
            msg = (
                "* GenerateContentRequest.generation_config.image_config.image_size: image_size"
                " must be one of '512', '1K', '2K', or '4K'.\n"
            )
        elif rec.image_size is not None and (
            "2.5" in rec.model or "flash-lite" in rec.model and rec.image_size != "1K"
        ):
            # 2.5 Flash Image takes no imageSize; Flash-Lite Image takes 1K only.
            msg = "Image size is not supported for this model."
        elif _tier(rec.service_tier) not in KNOWN_TIERS:
            msg = (
                f"Invalid value at 'service_tier' (type.googleapis.com/google.ai.generativelanguage.v1beta."
                f'ServiceTier), "{rec.service_tier}"'
            )
        elif _tier(rec.service_tier) not in {"standard", "unspecified", *TIERS.get(rec.model, ())}:
            msg = f"Service tier {_tier(rec.service_tier)} is not supported for model {rec.model}."
        else:
            return None
        return self._json(error_body(400, message=msg), 400)

    def _error(self, reply: Reply, model: str) -> web.Response:
        details, message = [], reply.message
        if reply.free_tier:
            details, message = _free_tier_zero(model, reply.retry_delay)
        elif reply.code == 429:  # Google's quota errors name the exhausted quota and link the docs
            details += [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_requests",
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                            "quotaDimensions": {"location": "global", "model": model},
                            "quotaValue": "20",
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [
                        {
                            "description": "Learn more about Gemini API quotas",
                            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                        }
                    ],
                },
            ]
            if message is None and reply.retry_delay:
                message = MESSAGES[429] + f"\nPlease retry in {reply.retry_delay}."
        if reply.retry_delay:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": reply.retry_delay})
        headers = {"Retry-After": str(reply.retry_after)} if reply.retry_after is not None else None
        return self._json(error_body(reply.code, reply.status, message, details), reply.code, headers)

    def _answer(self, reply: Reply, rec: RecordedRequest) -> dict:
        family = _family(rec.model)
        text = (_ANSWER_TEXT if family != "legacy" else None) if reply.default_text else reply.text
        parts: list[dict] = []
        if reply.kind == "ok" and family == "pro":
            # Pro "thinks" first: a draft text and a draft image (deliberately 8x8) come
            # before the answer; clients must skip parts with thought=true.
            parts += [
                {"text": "**Composing the image**\n\nPlanning layout and colours.", "thought": True},
                {"inlineData": {"mimeType": "image/png", "data": _png_b64(8, 8, (255, 0, 255))}, "thought": True},
            ]
        answer_from = len(parts)
        if text is not None:
            parts.append({"text": text})
        images = reply.images if reply.kind == "ok" else 0
        if images:
            w, h = ASPECTS[rec.aspect_ratio or "1:1"]
            scale = SIZES[rec.image_size or "1K"] * self.image_scale
            # Each prompt gets its own colour, as a real model draws each prompt differently:
            # a test can tell an edit's input (the latest image, or the one replied to) apart.
            red, green, blue = hashlib.sha256(rec.prompt.encode()).digest()[:3]
            data = _png_b64(max(1, round(w * scale)), max(1, round(h * scale)), (red, green, blue))
            parts += [{"inlineData": {"mimeType": "image/png", "data": data}} for _ in range(images)]
        if family != "legacy":
            # The 3.x models sign the first answer part and every image after it.
            for i, part in enumerate(parts[answer_from:], answer_from):
                if i == answer_from or "inlineData" in part:
                    parts[i] = {**part, "thoughtSignature": base64.b64encode(secrets.token_bytes(32)).decode()}
        usage = self._usage(reply, rec, images, text)
        self.sent_usage.append((rec.model, rec.image_size, usage))
        tail = {
            "usageMetadata": usage,
            "modelVersion": reply.model_version or rec.model,
            "responseId": secrets.token_urlsafe(16),
        }
        if reply.kind == "blocked":
            return {"promptFeedback": {"blockReason": reply.reason}, **tail}
        candidate = {"content": {"parts": parts, "role": "model"}} if parts else {}
        candidate.update(finishReason="STOP" if reply.kind == "ok" else reply.reason, index=0)
        return {"candidates": [candidate], **tail}

    @staticmethod
    def _usage(reply: Reply, rec: RecordedRequest, images: int, text: str | None) -> dict:
        """usageMetadata as Google sends it for image models: candidatesTokenCount is image plus
        text, only IMAGE is itemised, thinking is apart, and zero counts are left out (proto3 JSON)."""
        scripted = reply.usage
        image_input = IMAGE_INPUT_TOKENS * len(rec.input_images)
        prompt = scripted.prompt if scripted.prompt is not None else _tokens(rec.prompt) + image_input
        prompt_details = [{"modality": "TEXT", "tokenCount": max(0, prompt - image_input)}]
        if rec.input_images:
            prompt_details.append({"modality": "IMAGE", "tokenCount": image_input})
        image = images * (scripted.image if scripted.image is not None else _image_tokens(rec.model, rec.image_size))
        text_tokens = scripted.text if scripted.text is not None else (_tokens(text) if text else 0)
        default_thoughts = _DEFAULT_THOUGHTS[_family(rec.model)] if reply.kind == "ok" else 0
        thoughts = scripted.thoughts if scripted.thoughts is not None else default_thoughts
        out = image + text_tokens
        # Google's key order, as a real answer shows it.
        usage = {
            "promptTokenCount": prompt,
            **({"candidatesTokenCount": out} if out else {}),
            "totalTokenCount": prompt + out + thoughts,
            "promptTokensDetails": prompt_details,
        }
        if image:
            usage["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": image}]
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return usage
