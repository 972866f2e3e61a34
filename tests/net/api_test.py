#!/usr/bin/env python3
"""The client API over real HTTPS against real engramd processes.

A Python client written with the standard library only (python/
engram_client.py) learns, queries, shares and watches across two nodes;
then the rejection matrix: every credential that must not get in (no token,
a bad MAC, an expired token, one valid for longer than token_ttl, JWTs with
the wrong issuer or audience, alg none, HS256 keyed with the public key, an
unknown kid, an expired one, a client certificate of another CA) gets 401
or no TLS session, every operation the policy does not allow (acting as
another agent, an RBAC role without the permission, an ABAC deny, a missing
capability) gets 403 — and none of them changes anything. Keys, tokens,
certificates and JWTs are made here (JWTs signed by the openssl tool).

Usage: api_test.py --engramd PATH [unittest options]
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
import engram_client  # noqa: E402
from engram_client import Client, EngramError  # noqa: E402

ENGRAMD = None
ENGRAM = None


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True,
                          **kw).stdout


class IdentityProvider:
    """RSA and EC keys (openssl tool), their JWKS, and JWTs signed with
    them."""

    def __init__(self, d):
        self.rsa = os.path.join(d, "idp-rsa.pem")
        self.ec = os.path.join(d, "idp-ec.pem")
        run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
            "rsa_keygen_bits:2048", "-out", self.rsa)
        run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-out", self.ec)
        self.rsa_pub = run("openssl", "pkey", "-in", self.rsa, "-pubout")
        modulus = run("openssl", "rsa", "-in", self.rsa, "-noout",
                      "-modulus").strip().split("=", 1)[1]
        der = subprocess.run(["openssl", "pkey", "-in", self.ec, "-pubout",
                              "-outform", "DER"], check=True,
                             capture_output=True).stdout
        point = der[-64:]
        self.jwks = {"keys": [
            {"kty": "RSA", "kid": "rsa-1", "n": b64url(bytes.fromhex(modulus)),
             "e": b64url((65537).to_bytes(3, "big"))},
            {"kty": "EC", "kid": "ec-1", "crv": "P-256",
             "x": b64url(point[:32]), "y": b64url(point[32:])}]}

    @staticmethod
    def claims(agent, iss="https://idp.test", aud="engram", life=600):
        now = int(time.time())
        return {"iss": iss, "aud": aud, "sub": agent, "iat": now,
                "exp": now + life}

    def sign(self, claims, alg="RS256", kid="rsa-1"):
        header = {"alg": alg, "typ": "JWT", "kid": kid}
        data = (b64url(json.dumps(header).encode()) + "."
                + b64url(json.dumps(claims).encode()))
        if alg == "RS256":
            sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign",
                                  self.rsa], input=data.encode(), check=True,
                                 capture_output=True).stdout
        elif alg == "ES256":
            der = subprocess.run(["openssl", "dgst", "-sha256", "-sign",
                                  self.ec], input=data.encode(), check=True,
                                 capture_output=True).stdout
            sig = self._raw_ecdsa(der)
        elif alg == "HS256":  # key confusion: the public key as HMAC key
            sig = hmac.new(self.rsa_pub.encode(), data.encode(),
                           hashlib.sha256).digest()
        else:  # "none"
            sig = b""
        return data + "." + b64url(sig)

    @staticmethod
    def _raw_ecdsa(der):
        # SEQUENCE { INTEGER r, INTEGER s } -> r || s, 32 bytes each
        i = 2
        out = b""
        for _ in range(2):
            assert der[i] == 0x02
            n = der[i + 1]
            v = der[i + 2:i + 2 + n].lstrip(b"\0")
            out += v.rjust(32, b"\0")
            i += 2 + n
        return out


class Node:
    def __init__(self, cluster, node_id, config, peers=()):
        self.id = node_id
        d = cluster.dir
        self.log = os.path.join(d, node_id + ".log")
        port_file = os.path.join(d, node_id + ".port")
        api_file = os.path.join(d, node_id + ".api")
        cfg = os.path.join(d, node_id + ".toml")
        with open(cfg, "w") as f:
            f.write(config)
        args = [ENGRAMD, "--config", cfg, "--node-id", node_id, "--data-dir",
                os.path.join(d, "data-" + node_id), "--listen", "127.0.0.1:0",
                "--certs-dir", cluster.certs, "--port-file", port_file,
                "--api-port-file", api_file]
        for p in peers:
            args += ["--peer", "127.0.0.1:%d" % p.port]
        self.proc = subprocess.Popen(args, stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if os.path.exists(api_file) and os.path.exists(port_file):
                try:
                    self.api = int(open(api_file).read())
                    self.port = int(open(port_file).read())
                    break
                except ValueError:
                    pass
            if self.proc.poll() is not None:
                raise RuntimeError(node_id + " exited: " + open(self.log).read())
            time.sleep(0.05)
        else:
            raise RuntimeError(node_id + " did not start: "
                               + open(self.log).read())
        self.url = "https://127.0.0.1:%d" % self.api

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="engram-api-test-")
        self.certs = os.path.join(self.dir, "certs")
        for args in (["create-ca"],
                     ["create-node", "n1", "--host", "127.0.0.1"],
                     ["create-node", "n2", "--host", "127.0.0.1"],
                     ["create-node", "n3", "--host", "127.0.0.1"],
                     ["create-client", "alice"], ["create-client", "bob"]):
            run(ENGRAMD, "cert", *args, "--certs-dir", self.certs)
        self.key_file = os.path.join(self.certs, "shared.key")
        run(ENGRAMD, "token", "create-key", "--key-file", self.key_file)
        self.key = open(self.key_file, "rb").read()
        self.revoked = os.path.join(self.dir, "revoked.txt")
        open(self.revoked, "w").close()
        self.idp = IdentityProvider(self.dir)
        self.jwks = os.path.join(self.dir, "jwks.json")
        with open(self.jwks, "w") as f:
            json.dump(self.idp.jwks, f)
        # Another CA, and a client certificate of it.
        self.other = os.path.join(self.dir, "other")
        run(ENGRAMD, "cert", "create-ca", "--certs-dir", self.other)
        run(ENGRAMD, "cert", "create-client", "alice", "--certs-dir",
            self.other)
        self.nodes = []

    def auth_config(self, ttl="1h"):
        return ('[distribution.auth]\ntoken_ttl = "%s"\nshared_key = "%s"\n'
                'revoked_tokens = "%s"\n'
                'oauth = { jwks = "%s", issuer = "https://idp.test", '
                'audience = "engram" }\n' % (ttl, self.key_file, self.revoked,
                                              self.jwks))

    def start(self, node_id, extra="", peers=()):
        n = Node(self, node_id, self.auth_config() + extra, peers)
        self.nodes.append(n)
        return n

    def token(self, agent, ttl="10m", roles=()):
        args = [ENGRAMD, "token", "issue", "--key-file", self.key_file,
                "--agent", agent, "--ttl", ttl]
        for r in roles:
            args += ["--role", r]
        return run(*args).strip()

    def capability(self, agent, allow, ttl="10m"):
        args = [ENGRAMD, "token", "grant", "--key-file", self.key_file,
                "--agent", agent, "--ttl", ttl]
        for a in allow:
            args += ["--allow", a]
        return run(*args).strip()

    def forged(self, claims, key=None):
        """A shared-key token with any claims, MAC'd with `key`."""
        body = "egk1." + b64url(json.dumps(claims).encode())
        mac = hmac.new(key or self.key, body.encode(), hashlib.sha256).digest()
        return body + "." + b64url(mac)

    def client(self, node, agent, token=None, cert=None):
        kw = {"agent": agent, "ca": os.path.join(self.certs, "ca.crt")}
        if cert:
            kw.update(cert=os.path.join(cert, "client.%s.crt" % agent),
                      key=os.path.join(cert, "client.%s.key" % agent))
        return Client(node.url, token=token, **kw)

    def close(self):
        for n in self.nodes:
            n.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def until(f, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if f():
                return True
        except EngramError:
            pass
        time.sleep(0.1)
    return False


class ApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster()
        cls.n1 = cls.c.start("n1")
        cls.n2 = cls.c.start("n2", peers=[cls.n1])

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def refused(self, status, f, code=None):
        with self.assertRaises(EngramError) as e:
            f()
        self.assertEqual(e.exception.status, status, str(e.exception))
        if code:
            self.assertEqual(e.exception.code, code, str(e.exception))
        return e.exception

    # -- a Python client -------------------------------------------------------

    def test_python_client_learns_queries_shares_and_watches(self):
        c = self.c
        alice = c.client(self.n1, "alice", token=c.token("alice"))
        bob = c.client(self.n2, "bob", cert=c.certs)  # a client certificate
        status = alice.status()
        self.assertEqual(status["node"], "n1")
        self.assertTrue(status["version"])
        self.assertTrue(until(lambda: any(
            p["node"] == "n2" and p["up"] for p in alice.status()["peers"])))
        # Learn and query.
        fact = alice.learn(key="project.deadline", value="friday",
                           confidence=0.8)
        alice.learn(subject="sky", relation="is", obj="blue")
        got = alice.query(subject="sky")
        self.assertEqual([m["object"] for m in got], ["blue"])
        self.assertEqual(alice.query(type="semantic", limit=1)[0]["type"],
                         "semantic")
        # Watch on n1 what alice's other instance learns on n2.
        alice_n2 = c.client(self.n2, "alice", token=c.token("alice"))
        events = []
        ready = threading.Event()

        def watch():
            for e in alice.watch():
                events.append(e)
                if e.get("key") == "from.n2":
                    return

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        time.sleep(0.5)
        alice_n2.learn(key="from.n2", value="hello")
        t.join(20)
        self.assertTrue(any(e.get("key") == "from.n2" for e in events),
                        events)
        # Share with bob (PII redacted), who accepts it on another node.
        alice.learn(key="contact", value="mail me at alice@example.com")
        self.assertEqual(bob.query(), [])  # bob exists (on n2)
        shared = []
        self.assertTrue(until(lambda: shared.append(alice.share(
            "bob", filter={"type": "semantic"}, transform="redact_pii"))
            or shared))
        share = shared[0]
        self.assertTrue(until(lambda: any(
            s["id"] == share for s in bob.shares())))
        pending = [s for s in bob.shares() if s["id"] == share][0]
        self.assertEqual(pending["from"], "alice")
        self.assertNotIn("alice@example.com", json.dumps(pending))
        self.assertGreater(bob.accept(share, trust=0.5), 0)
        reported = [m for m in bob.query() if m.get("key") == "project.deadline"]
        self.assertEqual(reported[0]["epistemic"], "reported")
        self.assertEqual(reported[0]["source"], "alice")
        # Forget, and it is gone.
        self.assertEqual(alice.forget(fact), fact)
        self.assertFalse(any(m["id"] == fact for m in alice.query()))

    # -- who gets in ---------------------------------------------------------

    def test_credentials_that_must_not_get_in(self):
        c = self.c
        owner = c.client(self.n1, "carol", token=c.token("carol"))
        owner.learn(key="secret", value="42")
        before = owner.query()
        now = int(time.time())
        idp = c.idp
        bad_tokens = {
            "no token": None,
            "a bad MAC": c.forged({"sub": "carol", "iat": now,
                                   "exp": now + 60}, key=b"k" * 32),
            "a changed MAC": c.token("carol")[:-2] + "AA",
            "expired": c.forged({"sub": "carol", "iat": now - 120,
                                 "exp": now - 60}),
            "longer than token_ttl": c.forged({"sub": "carol", "iat": now,
                                               "exp": now + 7200}),
            "JWT wrong issuer": idp.sign(idp.claims("carol",
                                                    iss="https://evil")),
            "JWT wrong audience": idp.sign(idp.claims("carol", aud="other")),
            "JWT alg none": idp.sign(idp.claims("carol"), alg="none"),
            "JWT HS256 with the public key": idp.sign(idp.claims("carol"),
                                                      alg="HS256"),
            "JWT unknown kid": idp.sign(idp.claims("carol"), kid="nope"),
            "JWT expired": idp.sign(idp.claims("carol", life=-120)),
            "JWT longer than token_ttl": idp.sign(idp.claims("carol",
                                                             life=7200)),
        }
        for why, token in bad_tokens.items():
            with self.subTest(why):
                x = c.client(self.n1, "carol", token=token)
                self.refused(401, lambda: x.learn(key="secret", value="0"),
                             "unauthenticated")
                self.refused(401, x.query, "unauthenticated")
        # A large body from nobody is refused from its header alone.
        x = c.client(self.n1, "carol")
        self.refused(401, lambda: x.learn(key="k", value="v" * 900000),
                     "unauthenticated")
        # Good JWTs get in, both algorithms.
        for alg, kid in (("RS256", "rsa-1"), ("ES256", "ec-1")):
            x = c.client(self.n1, "carol",
                         token=idp.sign(idp.claims("carol"), alg, kid))
            self.assertEqual(len(x.query()), len(before))
        # A client certificate of another CA: no TLS session at all.
        x = c.client(self.n1, "alice", cert=c.other)
        with self.assertRaises(Exception) as e:
            x.status()
        self.assertNotIsInstance(e.exception, EngramError)
        # A bearer token naming one agent and a certificate another.
        x = Client(self.n1.url, agent="alice", token=c.token("bob"),
                   cert=os.path.join(c.certs, "client.alice.crt"),
                   key=os.path.join(c.certs, "client.alice.key"),
                   ca=os.path.join(c.certs, "ca.crt"))
        self.refused(401, x.query, "unauthenticated")
        # Nothing changed.
        self.assertEqual(owner.query(), before)

    def test_a_revoked_token_is_refused_before_it_expires(self):
        c = self.c
        leaked, kept = c.token("rita"), c.token("rita")
        grant = c.capability("rita", ["query:*"])
        for t in (leaked, kept, grant):
            c.client(self.n1, "rita", token=t).query()
        run(ENGRAMD, "token", "revoke", "--revoked-file", c.revoked,
            "--token", leaked)
        gid = json.loads(base64.urlsafe_b64decode(
            grant.split(".")[1] + "==="))["id"]
        run(ENGRAMD, "token", "revoke", "--revoked-file", c.revoked,
            "--id", gid)

        def refused(t):
            try:
                c.client(self.n1, "rita", token=t).query()
                return False
            except EngramError as e:
                return e.status == 401 and "revoked" in e.message
        self.assertTrue(until(lambda: refused(leaked) and refused(grant)))
        self.assertEqual(c.client(self.n1, "rita", token=kept).query(), [])
        # Not a token: a clear usage error.
        r = subprocess.run([ENGRAMD, "token", "revoke", "--revoked-file",
                            c.revoked, "--token", "nonsense"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not an Engram token", r.stderr)

    def test_an_agent_acts_only_as_itself(self):
        c = self.c
        victim = c.client(self.n1, "victim", token=c.token("victim"))
        victim.learn(key="plan", value="private")
        before = victim.query()
        # Mallory holds a valid token of her own.
        mallory = c.client(self.n1, "victim", token=c.token("mallory"))
        self.refused(403, mallory.query, "permission_denied")
        self.refused(403, lambda: mallory.learn(key="plan", value="mine"),
                     "permission_denied")
        self.refused(403, lambda: mallory.forget(before[0]["id"]),
                     "permission_denied")
        self.refused(403, mallory.inbox, "permission_denied")
        self.refused(403, mallory.watch().__next__, "permission_denied")
        self.assertEqual(victim.query(), before)
        # A tell carries the authenticated sender, whatever the body says.
        m = c.client(self.n1, "mallory", token=c.token("mallory"))
        m.request("POST", m._agent_path("messages"),
                  {"to": "victim", "text": "hi", "from": "boss"})
        inbox = []
        self.assertTrue(until(lambda: inbox.extend(victim.inbox()) or inbox))
        self.assertEqual(inbox, [{"from": "mallory", "text": "hi"}])
        # A federation's rules: a member cannot demote its leader, make
        # itself leader or change the belief policy.
        fed = victim.create_federation("Team", members=["mallory"])["id"]
        self.refused(403, lambda: m.set_role(fed, "victim", "observer"),
                     "permission_denied")
        self.refused(403, lambda: m.set_role(fed, "mallory", "leader"),
                     "permission_denied")
        self.refused(403, lambda: m.request(
            "PUT", m._agent_path("federations", fed, "beliefs"),
            {"beliefs": "take_newest"}), "permission_denied")
        self.assertEqual(victim.federation(fed)["leader"], "victim")
        # Nobody joins uninvited, or as more than the invitation grants, or
        # invites itself; a removed member stays out until invited again.
        eve = c.client(self.n2, "eve", token=c.token("eve"))
        self.refused(403, lambda: eve.join(fed), "permission_denied")
        self.refused(403, lambda: eve.join(fed, "observer"),
                     "permission_denied")
        self.refused(403, lambda: m.invite(fed, "eve"), "permission_denied")
        victim.invite(fed, "eve", role="observer", ttl_seconds=600)
        self.assertEqual([i["agent"] for i in
                          victim.federation(fed)["invitations"]], ["eve"])
        self.refused(403, lambda: eve.join(fed, "member"), "permission_denied")
        self.assertTrue(until(lambda: eve.join(fed, "observer")))
        self.assertTrue(until(
            lambda: victim.federation(fed)["invitations"] == []))
        victim.request("DELETE", victim._agent_path("federations", fed,
                                                    "members", "eve"))

        def kept_out():
            try:
                eve.join(fed, "observer")  # in still, while the removal syncs
                return False
            except EngramError as e:
                return e.status == 403 and e.code == "permission_denied"
        self.assertTrue(until(kept_out))
        self.refused(400, lambda: victim.invite(fed, "eve", ttl_seconds=-1),
                     "invalid_argument")
        self.refused(400, lambda: victim.invite(fed, "eve", role="leader"),
                     "invalid_argument")
        # No route reaches the node's internals.
        for method, path in (("POST", "/v1/node/stop"),
                             ("GET", "/v1/agents/victim/since"),
                             ("POST", "/v1/agents/victim/merge")):
            self.refused(404, lambda: m.request(method, path), "not_found")

    def test_hostile_bodies_and_names_are_bounded(self):
        c = self.c
        x = c.client(self.n1, "frank", token=c.token("frank"))
        deep = "[" * 100000 + "]" * 100000
        for path, body in (("shares", '{"to":"bob","filter":{"a":' + deep
                            + '}}'),
                           ("memories", '{"key":"k","value":"v","x":' + deep
                            + '}')):
            e = self.refused(400, lambda: self._raw(
                x, "POST", x._agent_path(path), body))
            self.assertIn("nests deeper", e.message)
        self.refused(400, lambda: x.request(
            "POST", x._agent_path("shares"),
            {"to": "bob", "filter": {"limit": 5}}), "invalid_argument")
        self.refused(400, lambda: x.request(
            "POST", x._agent_path("memories"),
            {"key": "k", "value": "v", "federation": 1}), "invalid_argument")
        # Each instance is an actor: an agent uses a bounded number of them
        # (64: "api", used above, and 63 more).
        for i in range(63):
            Client(self.n1.url, agent="frank", token=c.token("frank"),
                   ca=os.path.join(c.certs, "ca.crt"),
                   instance="i%d" % i).inbox()
        more = Client(self.n1.url, agent="frank", token=c.token("frank"),
                      ca=os.path.join(c.certs, "ca.crt"), instance="i63")
        self.refused(429, more.inbox, "too_many_requests")
        self.assertEqual(x.inbox(), [])  # the default instance still works

    @staticmethod
    def _raw(client, method, path, body):
        """Sends `body` as it is (not JSON made here)."""
        req = urllib.request.Request(client.url + path, data=body.encode(),
                                     method=method)
        req.add_header("Authorization", "Bearer " + client.token)
        try:
            urllib.request.urlopen(req, timeout=15, context=client.context)
        except urllib.error.HTTPError as e:
            err = json.loads(e.read())
            raise EngramError(e.code, err.get("code"), err.get("message"))

    def test_a_watch_ends_with_its_credential(self):
        c = self.c
        x = c.client(self.n1, "gina", token=c.token("gina", ttl="3s"))
        t0 = time.time()
        for _ in x.watch():
            pass
        self.assertLess(time.time() - t0, 15)

    def test_every_documented_route_is_served(self):
        c = self.c
        x = c.client(self.n1, "erin", token=c.token("erin"))
        doc = json.load(open(os.path.join(HERE, "..", "..", "docs",
                                          "openapi.json")))
        for path, ops in doc["paths"].items():
            for method in ops:
                if path.endswith("/watch"):
                    continue  # a stream: test_python_client_... reads it
                concrete = (path.replace("{agent}", "erin")
                            .replace("{id}", "0").replace("{federation}",
                                                          "fed-none")
                            .replace("{member}", "nobody")
                            .replace("{of}", "nobody"))
                with self.subTest(method=method, path=path):
                    try:
                        x.request(method.upper(), concrete,
                                  {} if method != "get" else None)
                    except EngramError as e:
                        self.assertNotIn(e.code, ("not_found",
                                                  "method_not_allowed"),
                                         str(e))

    def test_bad_end_to_end_input_gets_clear_errors(self):
        c = self.c
        x = c.client(self.n1, "frank", token=c.token("frank"))
        key = x._agent_path("key")
        e = self.refused(400, lambda: x.request(
            "PUT", key, {"public_key": "c2hvcnQ="}), "invalid_argument")
        self.assertIn("32 bytes", e.message)
        for binding in ("AAAA", "not base64!", base64.b64encode(
                b"\xff" * 40).decode()):
            e = self.refused(400, lambda: x.request(
                "PUT", key, {"binding": binding}), "invalid_argument")
        e = self.refused(400, lambda: x.request(
            "POST", x._agent_path("shares"),
            {"to": "erin", "share_id": "sh-1", "sealed_base64": "cGxhaW4="}),
            "invalid_argument")
        self.assertIn("sealed share", e.message)
        e = self.refused(400, lambda: x.request(
            "POST", x._agent_path("shares", "sh-1", "accept"),
            {"from": "erin", "opened_base64": "cGxhaW4="}), "invalid_argument")
        self.assertIn("opened share", e.message)
        # A real key: this node (run with TLS) vouches for it, and hands it
        # out as frank's.
        pk = base64.b64encode(bytes(range(32))).decode()
        b = x.request("PUT", key, {"public_key": pk})
        self.assertEqual((b["agent"], b["public_key"], b["vouched"],
                          b["agent_signed"]), ("frank", pk, True, False))
        got = {}
        self.assertTrue(until(lambda: got.update(
            x.request("GET", x._agent_path("keys", "frank"))) or got))
        self.assertEqual(got["binding"], b["binding"])

    def test_bad_requests_get_clear_errors(self):
        c = self.c
        x = c.client(self.n1, "dave", token=c.token("dave"))
        for body, why in (({"key": 5, "value": "x"}, "'key' must be a string"),
                          ({"value": "x"}, "a memory is a fact"),
                          ({"key": "k", "value": "v", "confidence": 2},
                           "[0, 1]"),
                          ({"key": "k\u0000", "value": "v"}, "key")):
            e = self.refused(400, lambda: x.request(
                "POST", x._agent_path("memories"), body))
            self.assertIn(why, e.message)
        self.refused(400, lambda: x.query(limit=-1), "invalid_argument")
        self.refused(400, lambda: x.query(type="dreams"), "invalid_argument")
        self.refused(400, lambda: x.forget("not-an-id"), "invalid_argument")
        self.refused(404, lambda: x.request("GET", "/v1/nothing"), "not_found")
        self.refused(405, lambda: x.request("PUT", "/v1/status"),
                     "method_not_allowed")
        # Not JSON, too large, a broken escape in the path.
        req_ctx = ssl.create_default_context(
            cafile=os.path.join(c.certs, "ca.crt"))
        raw = socket.create_connection(("127.0.0.1", self.n1.api))
        s = req_ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        s.sendall(b"GET /v1/agents/%zz/memories HTTP/1.1\r\nHost: x\r\n"
                  b"Authorization: Bearer " + c.token("dave").encode()
                  + b"\r\n\r\n")
        self.assertIn(b" 400 ", s.recv(4096))
        s.close()
        e = self.refused(413, lambda: x.request(
            "POST", x._agent_path("memories"),
            {"key": "k", "value": "v" * (2 << 20)}))
        self.assertEqual(e.code, "payload_too_large")


class UniversalConsensusTest(unittest.TestCase):
    """The Universal scope on Raft across three engramd processes, over
    HTTPS: written only where a policy grants learn:universal, read
    linearizably everywhere, each memory marked consensus."""

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster()
        group = ('[consensus]\nprotocol = "raft"\n'
                 'members = ["n1", "n2", "n3"]\n'
                 'election_timeout = "600ms"\nheartbeat_interval = "100ms"\n')
        grant = ('[distribution.access_control]\ndefault_policy = "deny"\n'
                 'model = { rbac = { roles = { decider = ["*:agent", '
                 '"learn:universal", "query:universal"] }, '
                 'role_assignments = { alice = ["decider"] } } }\n')
        cls.n1 = cls.c.start("n1", group + grant)
        cls.n2 = cls.c.start("n2", group, peers=[cls.n1])
        cls.n3 = cls.c.start("n3", group, peers=[cls.n1, cls.n2])

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def test_decided_once_read_the_same_everywhere(self):
        c = self.c
        alice = c.client(self.n1, "alice", token=c.token("alice"))
        self.assertTrue(until(lambda: alice.learn(
            key="release", value="2026-12-15", scope="universal",
            timeout_ms=2000), timeout=30))
        for node in (self.n1, self.n2, self.n3):
            bob = c.client(node, "bob", token=c.token("bob"))
            got = [m for m in bob.query(scope="universal")
                   if m.get("key") == "release"] if node is not self.n1 \
                else [m for m in alice.query(scope="universal")
                      if m.get("key") == "release"]
            self.assertEqual(len(got), 1, got)
            self.assertEqual(got[0]["value"], "2026-12-15")
            self.assertEqual(got[0]["consistency"], "consensus")
            self.assertEqual(got[0]["scope"], "Universal")
        # Agent memory still says crdt.
        alice.learn(key="draft", value="x")
        mine = [m for m in alice.query() if m.get("key") == "draft"]
        self.assertEqual(mine[0]["consistency"], "crdt")

    def test_the_cli_writes_and_reads_the_universal_scope(self):
        c = self.c
        cli = [ENGRAM, "--node", "127.0.0.1:%d" % self.n1.api, "--agent",
               "alice", "--token", c.token("alice"), "--ca",
               os.path.join(c.certs, "ca.crt")]
        def learned():
            p = subprocess.run(cli + ["learn", "motto", "decide once",
                                      "--universal"],
                               capture_output=True, text=True)
            return p.returncode == 0
        self.assertTrue(until(learned, timeout=30))
        out = json.loads(run(*cli, "--json", "query", "--universal"))
        got = [m for m in out if m.get("key") == "motto"]
        self.assertEqual(got[0]["value"], "decide once")
        self.assertEqual(got[0]["consistency"], "consensus")
        # --universal and --instance-scope exclude each other.
        p = subprocess.run(cli + ["learn", "k", "v", "--universal",
                                  "--instance-scope"],
                           capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)

    def test_writes_need_a_grant_and_sane_parameters(self):
        c = self.c
        # The default policy lets agents read the Universal scope, not
        # write it.
        bob = c.client(self.n2, "bob", token=c.token("bob"))
        with self.assertRaises(EngramError) as e:
            bob.learn(key="k", value="v", scope="universal")
        self.assertEqual(e.exception.status, 403, str(e.exception))
        alice = c.client(self.n1, "alice", token=c.token("alice"))
        for bad in ({"min_nodes": -1}, {"min_nodes": "3"},
                    {"timeout_ms": 0}, {"timeout_ms": 10 ** 9}):
            with self.assertRaises(EngramError) as e:
                alice.learn(key="k", value="v", scope="universal", **bad)
            self.assertEqual(e.exception.status, 400, str(bad))
        # More members than the group has: unavailable, nothing written.
        with self.assertRaises(EngramError) as e:
            alice.learn(key="k", value="v", scope="universal", min_nodes=4)
        self.assertEqual(e.exception.code, "unavailable", str(e.exception))
        with self.assertRaises(EngramError) as e:
            alice.query(scope="everywhere")
        self.assertEqual(e.exception.status, 400)


class AccessControlTest(unittest.TestCase):
    """Each model on a node of its own: what it does not allow is 403 and
    changes nothing; what it allows goes through."""

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster()
        d = cls.c.dir
        with open(os.path.join(d, "policies.toml"), "w") as f:
            f.write('''
[[policy]]
name = "agents use their memory"
effect = "allow"
operation = ["learn", "query", "status", "watch", "share"]

[[policy]]
name = "no episodes leave or stream"
effect = "deny"
operation = ["share", "watch"]
memory_type = "episodic"

[[policy]]
name = "no reading episodes"
effect = "deny"
operation = "query"
memory_type = "episodic"

[[policy]]
name = "eve is out"
effect = "deny"
principal = "eve"
''')
        cls.rbac = cls.c.start("n1", '''
[distribution.access_control]
default_policy = "deny"
model = { rbac = { roles = { reader = ["query:*", "status"], writer = ["learn:agent", "query:agent"] }, role_assignments = { alice = ["writer"], bob = ["reader"] } } }
''')
        cls.abac = cls.c.start("n2", '''
[distribution.access_control]
default_policy = "deny"
model = { abac = { policies = "%s" } }
''' % os.path.join(d, "policies.toml"))
        cls.cap = cls.c.start("n3", '''
[distribution.access_control]
model = { capability = { capabilities = { alice = ["learn:agent", "query:agent"], "*" = ["status"] } } }
''')

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def denied(self, f):
        with self.assertRaises(EngramError) as e:
            f()
        self.assertEqual(e.exception.status, 403, str(e.exception))
        return e.exception.message

    def test_rbac(self):
        c = self.c
        alice = c.client(self.rbac, "alice", token=c.token("alice"))
        bob = c.client(self.rbac, "bob", token=c.token("bob"))
        carol = c.client(self.rbac, "carol", token=c.token("carol"))
        alice.learn(key="k", value="v")
        before = alice.query()
        msg = self.denied(lambda: bob.learn(key="k", value="w"))
        self.assertIn("no role of agent 'bob' allows learn", msg)
        self.assertEqual(bob.query(), [])  # reads its own (empty) memory
        self.denied(carol.query)
        self.denied(lambda: alice.tell("bob", "hi"))
        # A role from the token counts.
        carol2 = c.client(self.rbac, "carol",
                          token=c.token("carol", roles=["reader"]))
        self.assertEqual(carol2.query(), [])
        self.assertEqual(alice.query(), before)

    def test_abac(self):
        c = self.c
        alice = c.client(self.abac, "alice", token=c.token("alice"))
        eve = c.client(self.abac, "eve", token=c.token("eve"))
        alice.learn(key="k", value="v")
        alice.learn(key="e", value="x", type="episodic")
        msg = self.denied(lambda: alice.query(type="episodic"))
        self.assertIn("policy 'no reading episodes' denies it", msg)
        # A query that names no type does not return what the policy denies.
        self.assertEqual([m["key"] for m in alice.query()], ["k"])
        # A share naming no type would take episodes along: refused; one
        # of an allowed type passes the policy (bob is unknown here: 404).
        self.assertIn("share episodic memories",
                      self.denied(lambda: alice.share("bob")))
        with self.assertRaises(EngramError) as e:
            alice.share("bob", filter={"type": "semantic"})
        self.assertEqual(e.exception.status, 404, str(e.exception))
        # A watch streams what the policy lets alice see.
        seen = []

        def watch():
            for m in alice.watch():
                seen.append(m["key"])
                if m["key"] == "last":
                    return

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        time.sleep(0.5)
        alice.learn(key="hidden", value="x", type="episodic")
        alice.learn(key="last", value="y")
        t.join(20)
        self.assertEqual(seen, ["last"])
        self.assertIn("policy 'eve is out' denies it",
                      self.denied(lambda: eve.learn(key="k", value="v")))
        self.assertIn("default policy: deny",
                      self.denied(lambda: alice.tell("bob", "hi")))

    def test_capabilities(self):
        c = self.c
        alice = c.client(self.cap, "alice", token=c.token("alice"))
        bob = c.client(self.cap, "bob", token=c.token("bob"))
        alice.learn(key="k", value="v")
        self.assertIn("holds no capability",
                      self.denied(lambda: bob.learn(key="k", value="w")))
        self.denied(bob.query)
        self.assertEqual(bob.status()["node"], "n3")
        self.assertEqual([m["key"] for m in alice.query()], ["k"])

    def test_capability_tokens_narrow_and_never_widen(self):
        c = self.c
        # A grant lets dave (no configured capability) learn and query;
        # nothing else.
        grant = c.capability("dave", ["learn:agent", "query:*"])
        dave = c.client(self.cap, "dave", token=grant)
        dave.learn(key="plan", value="ship", type="semantic")
        dave.learn(key="met", value="ana", type="episodic")
        self.assertEqual(len(dave.query()), 2)
        self.assertIn("capability token does not allow forget",
                      self.denied(lambda: dave.forget(dave.query()[0]["id"])))
        self.assertIn("capability token does not allow tell",
                      self.denied(lambda: dave.tell("alice", "hi")))
        # Narrowed in Python (no key) to reading semantic memories: the
        # holder of the narrowed token reads those only and writes nothing.
        reader = c.client(self.cap, "dave", token=engram_client.attenuate(
            grant, allow=["query:agent"], types=["semantic"], ttl_seconds=60))
        self.assertEqual([m["key"] for m in reader.query()], ["plan"])
        self.denied(lambda: reader.learn(key="x", value="y"))
        # Narrowed by the CLI, from an address it is not used from.
        narrowed = run(ENGRAM, "token", "attenuate", "--token", grant,
                       "--source", "192.0.2.0/24").strip()
        elsewhere = c.client(self.cap, "dave", token=narrowed)
        self.assertIn("not valid from", self.denied(elsewhere.query))
        # Taking a caveat away, or editing one, breaks the MAC: 401.
        head, caveat, mac = reader.token.rsplit(".", 2)
        for bad in (head + "." + mac,
                    head + "." + b64url(b'{"allow":["*:*"]}') + "." + mac):
            forged = c.client(self.cap, "dave", token=bad)
            with self.assertRaises(EngramError) as e:
                forged.query()
            self.assertEqual(e.exception.status, 401)
        # Pending shares are shown memory type by memory type too.
        erin = c.client(self.cap, "erin", token=c.capability(
            "erin", ["learn:agent", "share:*", "query:*"]))
        erin.learn(key="route", value="north", type="semantic")
        erin.learn(key="saw", value="a fox", type="procedural")
        erin.share("dave")
        full = c.client(self.cap, "dave", token=c.capability(
            "dave", ["share:*"]))
        self.assertTrue(until(lambda: full.shares()))
        self.assertEqual(sorted(m["key"] for m in full.shares()[0]["memories"]),
                         ["route", "saw"])
        semantic = c.client(self.cap, "dave", token=engram_client.attenuate(
            c.capability("dave", ["share:*"]), types=["semantic"]))
        self.assertEqual([m["key"] for m in semantic.shares()[0]["memories"]],
                         ["route"])
        # A token for one federation: its Collective memory, nothing else.
        lead = c.client(self.cap, "frank", token=c.capability(
            "frank", ["federation_create:*", "federation_show:*",
                      "learn:*", "query:*"]))
        fed = lead.create_federation("Crew", members=["frank"])["id"]
        crew_only = c.client(self.cap, "frank", token=engram_client.attenuate(
            lead.token, federations=[fed]))
        crew_only.learn(key="eta", value="friday", federation=fed)
        self.assertIn("concerns none",
                      self.denied(lambda: crew_only.learn(key="k", value="v")))
        self.assertIn("concerns none", self.denied(crew_only.query))
        self.assertIn("eta", [m["key"] for m in
                              crew_only.query(federation=fed)])
        # It acts as dave only.
        as_alice = c.client(self.cap, "alice", token=grant)
        self.denied(as_alice.query)
        self.assertEqual([m["key"] for m in
                          c.client(self.cap, "alice",
                                   token=c.token("alice")).query()], ["k"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--engramd", required=True)
    parser.add_argument("--engram", required=True)
    args, rest = parser.parse_known_args()
    ENGRAMD = os.path.abspath(args.engramd)
    ENGRAM = os.path.abspath(args.engram)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
