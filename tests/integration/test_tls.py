"""HTTPS: alertmapd with --tls-cert/--tls-key, a certificate made here with the
openssl CLI and checked with curl --cacert and Python's ssl module.

- HTTPS answers (HTTP/1.1 and h2 over ALPN); an ingest is stored;
- SIGHUP swaps the certificate: new handshakes get the new serial while a
  connection opened before keeps working;
- a broken certificate at reload keeps the old one and logs the error;
- TLS 1.1 and TLS 1.2 ciphers without forward secrecy or AEAD are refused;
- plain HTTP on an address that is not loopback is refused at start unless
  --allow-plain-http (or ALERTMAP_ALLOW_PLAIN_HTTP=1) says so; a certificate
  that does not load stops the start.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import warnings

import harness


def make_cert(directory, name, serial):
    """A self-signed P-256 certificate for 127.0.0.1/localhost; returns
    (certificate path, key path)."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=alertmap test %s" % name, "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1", "-set_serial", serial],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout * harness.SLOW
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout * harness.SLOW, what))


class TlsServer(harness.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.mkdtemp(prefix="alertmap-tls-")
        cls.c1, cls.k1 = make_cert(cls.certs, "one", "0x1111")
        cls.c2, cls.k2 = make_cert(cls.certs, "two", "0x2222")
        cls.both = os.path.join(cls.certs, "both.pem")
        with open(cls.both, "w") as out:
            for p in (cls.c1, cls.c2):
                with open(p) as f:
                    out.write(f.read())
        # the files alertmapd reads; replaced under it by the reload tests
        cls.cert = os.path.join(cls.certs, "server.crt")
        cls.key = os.path.join(cls.certs, "server.key")
        cls.install(cls.c1, cls.k1)
        cls.db = harness.TempDatabase(cls.__name__)
        cls.servers = []
        try:
            cls.srv = cls.start_server(args=["--tls-cert", cls.cert, "--tls-key", cls.key],
                                       wait=False)
            wait_for(lambda: cls.https_status("/healthz") == 200, 20, "HTTPS /healthz")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.certs, ignore_errors=True)

    @classmethod
    def install(cls, cert, key):
        for src, dst in ((cert, cls.cert), (key, cls.key)):
            tmp = dst + ".new"
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)

    @classmethod
    def context(cls):
        ctx = ssl.create_default_context(cafile=cls.both)
        return ctx

    @classmethod
    def https_status(cls, path):
        try:
            c = http.client.HTTPSConnection("127.0.0.1", cls.srv.port, context=cls.context(),
                                            timeout=5)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            return r.status
        except (OSError, http.client.HTTPException):
            if cls.srv.proc.poll() is not None:
                raise AssertionError("alertmapd exited: %s" % cls.srv.stderr())
            return None

    def serial(self):
        """The serial of the certificate a new handshake gets, as hex text."""
        ctx = self.context()
        with socket.create_connection(("127.0.0.1", self.srv.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                return s.getpeercert()["serialNumber"]

    def log_events(self, event):
        return [l for l in self.srv.log_lines() if l.get("event") == event]

    def curl(self, *args):
        r = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", self.both,
                            "-w", "\n%{http_code} %{http_version}"] + list(args),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        body, _, tail = r.stdout.rpartition("\n")
        code, version = tail.split()
        return int(code), version, body

    # ---- tests ----------------------------------------------------------

    def test_https_with_curl(self):
        base = "https://127.0.0.1:%d" % self.srv.port
        code, version, body = self.curl("--http1.1", base + "/healthz")
        self.assertEqual((code, version), (200, "1.1"))
        self.assertEqual(json.loads(body), {"status": "ok"})
        code, version, body = self.curl("--http2", "https://localhost:%d/healthz" % self.srv.port)
        self.assertEqual((code, version), (200, "2"), "ALPN should select h2")
        payload = json.dumps(harness.generic_payload("over https"))
        code, _, body = self.curl("-H", "Content-Type: application/json",
                                  "-H", "Authorization: Bearer " + self.srv.key,
                                  "--data-binary", payload, base + "/v1/ingest/generic")
        self.assertEqual(code, 202, body)
        uuid = json.loads(body)["data"]["alert_uuid"]
        self.assertIn(uuid, harness.alert_uuids_in_db(self.db.url))
        lines = self.log_events("listening")
        self.assertEqual(lines[-1].get("scheme"), "https", lines)

    def test_plain_http_to_the_tls_port_gets_no_answer(self):
        with self.assertRaises((OSError, http.client.HTTPException)):
            r = harness.request(self.srv.port, "GET", "/healthz", timeout=5)
            raise AssertionError("plain HTTP answered on the HTTPS port: %r" % r)

    def test_alpn_offers_h2_and_http11(self):
        for offer, want in ((["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")):
            ctx = self.context()
            ctx.set_alpn_protocols(offer)
            with socket.create_connection(("127.0.0.1", self.srv.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    self.assertEqual(s.selected_alpn_protocol(), want)
                    self.assertIn(s.version(), ("TLSv1.2", "TLSv1.3"))

    def test_tls11_refused(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # this client really offers TLS 1.1
        with socket.create_connection(("127.0.0.1", self.srv.port), timeout=10) as raw:
            with self.assertRaises((ssl.SSLError, ConnectionError)) as cm:
                ctx.wrap_socket(raw).close()
        self.assertNotIn("NO_PROTOCOLS_AVAILABLE", str(cm.exception),
                         "the client refused by itself; the server was not asked")
        self.assertEqual(self.https_status("/healthz"), 200)

    def test_tls12_without_forward_secrecy_or_aead_refused(self):
        for cipher, ok in (("ECDHE-ECDSA-AES128-GCM-SHA256", True),
                           ("ECDHE-ECDSA-CHACHA20-POLY1305", True),
                           ("ECDHE-ECDSA-AES128-SHA", False),
                           ("ECDHE-ECDSA-AES256-SHA384", False)):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers(cipher + ":@SECLEVEL=0")
            with socket.create_connection(("127.0.0.1", self.srv.port), timeout=10) as raw:
                if ok:
                    with ctx.wrap_socket(raw) as s:
                        self.assertEqual(s.cipher()[0], cipher)
                        self.assertEqual(s.version(), "TLSv1.2")
                else:
                    with self.assertRaises((ssl.SSLError, ConnectionError), msg=cipher):
                        ctx.wrap_socket(raw).close()

    def test_reload_swaps_certificate_and_keeps_connections(self):
        self.install(self.c1, self.k1)
        before = len(self.log_events("tls_reloaded"))
        self.srv.signal(signal.SIGHUP)
        wait_for(lambda: len(self.log_events("tls_reloaded")) > before, 20, "tls_reloaded")
        self.assertEqual(self.serial(), "1111")

        # an open HTTPS keep-alive connection, on the first certificate
        old = http.client.HTTPSConnection("127.0.0.1", self.srv.port, context=self.context(),
                                          timeout=10)
        old.request("GET", "/healthz")
        r = old.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        self.assertEqual(old.sock.getpeercert()["serialNumber"], "1111")

        self.install(self.c2, self.k2)
        self.srv.signal(signal.SIGHUP)
        wait_for(lambda: len(self.log_events("tls_reloaded")) > before + 1, 20, "second reload")
        self.assertEqual(self.serial(), "2222", "a new handshake gets the new certificate")
        line = self.log_events("tls_reloaded")[-1]
        self.assertIn("serial 2222", line.get("certificate", ""), line)

        # the connection opened before the reload still answers, on its certificate
        for _ in range(3):
            old.request("GET", "/healthz")
            r = old.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(json.loads(r.read()), {"status": "ok"})
        self.assertEqual(old.sock.getpeercert()["serialNumber"], "1111")
        old.close()
        self.assertEqual(self.srv.proc.poll(), None)

    def test_reload_with_broken_certificate_keeps_the_old(self):
        self.install(self.c2, self.k2)
        ok = len(self.log_events("tls_reloaded"))
        self.srv.signal(signal.SIGHUP)
        wait_for(lambda: len(self.log_events("tls_reloaded")) > ok, 20, "tls_reloaded")
        self.assertEqual(self.serial(), "2222")

        failed = len(self.log_events("tls_reload_failed"))
        with open(self.cert + ".new", "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        os.replace(self.cert + ".new", self.cert)
        self.srv.signal(signal.SIGHUP)
        wait_for(lambda: len(self.log_events("tls_reload_failed")) > failed, 20,
                 "tls_reload_failed")
        line = self.log_events("tls_reload_failed")[-1]
        self.assertEqual(line["level"], "error")
        self.assertTrue(line.get("error"), line)
        self.assertEqual(self.serial(), "2222", "the old certificate stays in use")
        self.assertEqual(self.https_status("/healthz"), 200)

        # a key that does not match the certificate is refused the same way
        self.install(self.c1, self.k2)
        self.srv.signal(signal.SIGHUP)
        wait_for(lambda: len(self.log_events("tls_reload_failed")) > failed + 1, 20,
                 "second tls_reload_failed")
        self.assertIn(self.key, self.log_events("tls_reload_failed")[-1]["error"])
        self.assertEqual(self.serial(), "2222")
        self.install(self.c1, self.k1)


class StartupChecks(unittest.TestCase):
    """What alertmapd refuses at start, before serving anything."""

    @classmethod
    def setUpClass(cls):
        cls.db = harness.TempDatabase(cls.__name__)
        cls.certs = tempfile.mkdtemp(prefix="alertmap-tls-")

    @classmethod
    def tearDownClass(cls):
        cls.db.drop()
        shutil.rmtree(cls.certs, ignore_errors=True)

    def run_server(self, args, env=None, expect_exit=True):
        s = harness.Server(self.db.url, env=env, args=args)
        try:
            s.start(wait=False)
            if expect_exit:
                rc = s.proc.wait(timeout=30 * harness.SLOW)
                return rc, s.stderr()
            wait_for(lambda: any(l.get("event") == "listening" for l in s.log_lines()) or
                     s.proc.poll() is not None, 20, "listening")
            self.assertIsNone(s.proc.poll(), s.stderr())
            lines = s.log_lines()
            s.stop()
            return 0, lines
        finally:
            s.cleanup()

    def test_plain_http_off_loopback_refused(self):
        port = harness.free_port()
        rc, err = self.run_server(["--listen", "0.0.0.0:%d" % port])
        self.assertEqual(rc, 1, err)
        self.assertIn("refusing to serve plain HTTP on 0.0.0.0:%d" % port, err)
        self.assertIn("--allow-plain-http", err)

    def test_plain_http_off_loopback_allowed_explicitly(self):
        for args, env in ((["--allow-plain-http"], None),
                          ([], {"ALERTMAP_ALLOW_PLAIN_HTTP": "1"})):
            port = harness.free_port()
            rc, lines = self.run_server(["--listen", "0.0.0.0:%d" % port] + args, env=env,
                                        expect_exit=False)
            warn = [l for l in lines if l.get("event") == "plain_http"]
            self.assertEqual(len(warn), 1, lines)
            self.assertEqual(warn[0]["level"], "warn")

    def test_loopback_addresses_need_no_tls(self):
        for listen in ("127.0.0.2:%d", "[::1]:%d"):
            port = harness.free_port()
            try:
                rc, lines = self.run_server(["--listen", listen % port], expect_exit=False)
            except AssertionError as e:
                if "::1" in listen and "Cannot assign" in str(e):
                    continue  # no IPv6 loopback in this sandbox
                raise
            self.assertFalse([l for l in lines if l.get("event") == "plain_http"])

    def test_broken_certificate_stops_start(self):
        cert = os.path.join(self.certs, "bad.crt")
        with open(cert, "w") as f:
            f.write("not a certificate\n")
        good_cert, good_key = make_cert(self.certs, "good", "0x3333")
        rc, err = self.run_server(["--tls-cert", cert, "--tls-key", good_key])
        self.assertEqual(rc, 1, err)
        self.assertIn("cannot load the certificate chain", err)
        rc, err = self.run_server(["--tls-cert", good_cert])
        self.assertEqual(rc, 2, err)
        self.assertIn("--tls-cert needs --tls-key", err)


if __name__ == "__main__":
    harness.main()
