#!/usr/bin/env python3
"""openai_client.py — the official `openai` Python client (pip install openai) against `qv serve`.

A by-hand check, not part of CI (CI has no Python): asks about a video and an image, once as a plain
answer and once streamed, the way any OpenAI-API program would.

    qv serve --model ~/Qwen2-VL-7B-Instruct --media-root ~/videos &
    python3 samples/openai_client.py --base-url http://127.0.0.1:8080/v1 --video ~/videos/clip.mp4 \
        [--image photo.png] [--api-key KEY] [--max-tokens 64]

The video goes as file:///PATH (it must lie under the server's --media-root) or, with --inline, as a
base64 data: URL; the image always as a data: URL. vLLM-style extras (fps, max_pixels, start, end,
return_token_ids) go through extra_body.
"""
import argparse
import base64
import mimetypes
import os
import time

from openai import OpenAI


def data_url(path):
    mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
    with open(path, "rb") as f:
        return "data:%s;base64,%s" % (mime, base64.b64encode(f.read()).decode())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    ap.add_argument("--api-key", default=os.environ.get("QV_API_KEY", "none"))
    ap.add_argument("--video", required=True)
    ap.add_argument("--image")
    ap.add_argument("--inline", action="store_true", help="send the video as a data: URL")
    ap.add_argument("--question", default="What is happening in this video?")
    ap.add_argument("--max-tokens", type=int, default=32)
    a = ap.parse_args()

    client = OpenAI(base_url=a.base_url, api_key=a.api_key)
    model = client.models.list().data[0].id
    print("models:", [m.id for m in client.models.list().data])

    video = data_url(a.video) if a.inline else "file://" + os.path.realpath(a.video)
    messages = [{"role": "user", "content": [
        {"type": "video_url", "video_url": {"url": video}},
        {"type": "text", "text": a.question}]}]

    # 1. a plain answer
    t0 = time.time()
    r = client.chat.completions.create(model=model, messages=messages, max_tokens=a.max_tokens,
                                       extra_body={"fps": 2.0, "return_token_ids": True})
    print("\n[plain] %.2f s, finish_reason=%s" % (time.time() - t0, r.choices[0].finish_reason))
    print("usage:", r.usage.model_dump())
    print("text:", repr(r.choices[0].message.content))
    plain = r.choices[0].message.content

    # 2. the same question, streamed
    t0 = time.time()
    first = None
    pieces = []
    usage = None
    finish = None
    stream = client.chat.completions.create(model=model, messages=messages, max_tokens=a.max_tokens, stream=True,
                                            stream_options={"include_usage": True}, extra_body={"fps": 2.0})
    n_chunks = 0
    for chunk in stream:
        n_chunks += 1
        if chunk.usage:
            usage = chunk.usage.model_dump()
        for c in chunk.choices:
            if c.delta.content:
                if first is None:
                    first = time.time() - t0
                pieces.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    text = "".join(pieces)
    print("\n[stream] %d chunks, first text after %.2f s, total %.2f s, finish_reason=%s" %
          (n_chunks, first or 0, time.time() - t0, finish))
    print("usage:", usage)
    print("text:", repr(text))
    print("stream == plain:", text == plain)

    # 3. an image as a data: URL
    if a.image:
        r = client.chat.completions.create(model=model, max_tokens=a.max_tokens, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_url(a.image)}},
            {"type": "text", "text": "Describe this picture."}]}])
        print("\n[image] finish_reason=%s usage=%s" % (r.choices[0].finish_reason, r.usage.model_dump()))
        print("text:", repr(r.choices[0].message.content))

    # 4. an error comes back as OpenAI's error object (here: http URLs are never fetched)
    try:
        client.chat.completions.create(model=model, max_tokens=4, messages=[{"role": "user", "content": [
            {"type": "video_url", "video_url": {"url": "https://example.com/a.mp4"}}]}])
    except Exception as e:  # openai.BadRequestError
        print("\n[error] %s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    main()
