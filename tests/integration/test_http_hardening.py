"""What a browser page or a broken client can make alertmapd do:

- ingest and the dry run accept application/json and application/*+json
  (parameters such as charset allowed) and answer 415 UNSUPPORTED_MEDIA_TYPE
  for anything else, including no Content-Type, with nothing stored;
- no answer carries a CORS header (Access-Control-*), for OPTIONS
  preflights and requests with an Origin alike;
- libh2o's own errors (broken chunked encoding, a broken Content-Length, an
  unknown Transfer-Encoding or Expect, a body far over --max-body) are JSON;
  the one libh2o 2.2.5 writes from a constant buffer (a request it cannot
  parse) is still plain text, as docs/operations.md says;
- a source name that is not UTF-8 is logged as valid JSON (U+FFFD).
"""

import json
import socket

import harness


def raw(port, data, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            out += d
        return out
    finally:
        s.close()


def split_answer(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


class MediaTypes(harness.ServerTestCase):
    def test_json_types_accepted(self):
        for i, ct in enumerate(("application/json", "application/json; charset=utf-8",
                                "Application/JSON;charset=UTF-8", "application/vnd.api+json",
                                "application/cloudevents+json; charset=utf-8")):
            r = self.srv.post("/v1/ingest/generic", harness.generic_payload("json type %d" % i),
                              headers={"Content-Type": ct})
            self.assertEqual(r.status, 202, (ct, r))
            r = self.srv.post("/v1/sources/generic/test", harness.generic_payload("dry %d" % i),
                              headers={"Content-Type": ct})
            self.assertEqual(r.status, 200, (ct, r))

    def test_other_types_refused_with_415(self):
        before = harness.count_rows(self.db.url)
        for ct in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                   "text/json", "application/jsonx", "application/json+xml", "json",
                   "application/+json/x", ""):
            hdrs = {"Content-Type": ct}
            r = self.srv.post("/v1/ingest/generic", harness.generic_payload("refused " + ct),
                              headers=hdrs)
            err = self.assertError(r, 415, "UNSUPPORTED_MEDIA_TYPE")
            self.assertIn("application/json", err["message"])
            r = self.srv.post("/v1/sources/generic/test", harness.generic_payload("dry"),
                              headers=hdrs)
            self.assertError(r, 415, "UNSUPPORTED_MEDIA_TYPE")
        # no Content-Type at all (what a no-cors fetch of a Blob sends)
        body = json.dumps(harness.generic_payload("no type")).encode()
        status, headers, out = split_answer(raw(
            self.srv.port, b"POST /v1/ingest/generic HTTP/1.1\r\nHost: x\r\nConnection: close"
            b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)))
        self.assertEqual(status, 415)
        self.assertEqual(json.loads(out)["error"]["code"], "UNSUPPORTED_MEDIA_TYPE")
        self.assertEqual(harness.count_rows(self.db.url), before, "a refused request stored rows")

    def test_no_cors_headers(self):
        origin = {"Origin": "https://evil.example"}
        answers = [
            harness.request(self.srv.port, "OPTIONS", "/v1/ingest/generic", headers=dict(
                origin, **{"Access-Control-Request-Method": "POST",
                           "Access-Control-Request-Headers": "content-type"})),
            harness.request(self.srv.port, "OPTIONS", "/v1/alerts", headers=origin),
            self.srv.post("/v1/ingest/generic", harness.generic_payload("with origin"),
                          headers=origin),
            self.srv.post("/v1/ingest/generic", "x", headers=dict(origin,
                                                                  **{"Content-Type": "text/plain"})),
            self.srv.get("/v1/alerts?limit=1", headers=origin),
            self.srv.get("/healthz", headers=origin),
            self.srv.get("/nowhere", headers=origin),
        ]
        for r in answers:
            cors = [k for k, _ in r.headers if k.lower().startswith("access-control-")]
            self.assertEqual(cors, [], r)
        self.assertError(answers[0], 405, "METHOD_NOT_ALLOWED")
        self.assertEqual(answers[2].status, 202)


class OwnErrors(harness.ServerTestCase):
    server_args = ["--max-body", "1k"]

    def check_json(self, request, status, code):
        st, headers, body = split_answer(raw(self.srv.port, request))
        self.assertEqual(st, status, body)
        self.assertTrue(headers.get("content-type", "").startswith("application/json"), headers)
        self.assertEqual(json.loads(body)["error"]["code"], code)

    def test_libh2o_errors_are_json(self):
        post = b"POST /v1/ingest/generic HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        self.check_json(post + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "BAD_REQUEST")
        self.check_json(post + b"Transfer-Encoding: gzip\r\n\r\n", 400, "BAD_REQUEST")
        self.check_json(post + b"Content-Length: abc\r\n\r\n", 400, "BAD_REQUEST")
        self.check_json(post + b"Expect: something\r\nContent-Length: 2\r\n\r\n{}", 417,
                        "EXPECTATION_FAILED")
        big = 1024 * 1024 + 4096
        self.check_json(post + b"Content-Length: %d\r\n\r\n" % big, 413, "PAYLOAD_TOO_LARGE")
        lines = [l for l in self.srv.log_lines() if l.get("event") == "request"]
        self.assertTrue(any(l.get("code") == "BAD_REQUEST" and l.get("status") == 400
                            for l in lines), lines)

    def test_unparsable_request_is_plain_text(self):
        # libh2o 2.2.5 writes this 400 itself from a constant buffer, before
        # any filter: documented in docs/operations.md as the one plain-text
        # answer. If a libh2o upgrade changes it, this test says so.
        for bad in (b"GARBAGE\r\n\r\n",
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
                    b"GET /healthz HTTP/1.1\r\n" +
                    b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n"):
            st, headers, body = split_answer(raw(self.srv.port, bad))
            self.assertEqual(st, 400)
            self.assertEqual(body, b"Bad Request")

    def test_invalid_utf8_source_name_logged_as_json(self):
        r = harness.request(self.srv.port, "POST", "/v1/ingest/bad%FF%C3name", body={"a": 1})
        self.assertError(r, 404, "UNKNOWN_SOURCE")
        found = False
        for line in self.srv.stderr().splitlines():
            v = json.loads(line)  # every line is JSON
            if v.get("event") == "request" and v.get("status") == 404 and \
                    "name" in (v.get("source") or ""):
                self.assertEqual(v["source"], "bad\ufffd\ufffdname")
                found = True
        self.assertTrue(found, self.srv.stderr()[-3000:])


if __name__ == "__main__":
    harness.main()
