"""A client of Engram's HTTP API, with the Python standard library only.

    from engram_client import Client
    c = Client("https://127.0.0.1:8420", token=open("alice.token").read().strip(),
               ca="certs/ca.crt")
    c.learn(key="user.name", value="Bob")
    for m in c.query(subject="sky"):
        print(m["content"])
    for event in c.watch():          # what others learned, as it arrives
        print(event["content"])

Authentication is a bearer token (engramd token issue, or a JWT from the
configured identity provider) or a client certificate (engramd cert
create-client): the client acts as the agent its credential names. Errors
raise EngramError with the API's stable code, the HTTP status and message.
"""

import base64
import hashlib
import hmac
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request


def attenuate(token, allow=None, types=None, sources=None, federations=None,
              ttl_seconds=None):
    """A capability token (engramd token grant: "egc1.…") narrowed before it
    is handed on: afterwards only what every `allow` ("operation:scope_kind"),
    `types` (memory types), `sources` (client CIDRs) and `federations` (the
    only federations it may concern) permit, for at most
    `ttl_seconds` from now. No key is needed, and whoever receives the
    result cannot widen it again (the MAC chains: m' = HMAC(m, caveat))."""
    if not token.startswith("egc1."):
        raise ValueError("not a capability token (egc1.…)")
    caveat = {}
    for name, value in (("allow", allow), ("types", types),
                        ("sources", sources), ("federations", federations)):
        if value:
            caveat[name] = list(value)
    if ttl_seconds:
        caveat["exp"] = int(time.time()) + int(ttl_seconds)
    if not caveat:
        raise ValueError("nothing to narrow")
    body, _, mac = token.rpartition(".")
    pad = "=" * (-len(mac) % 4)
    key = base64.urlsafe_b64decode(mac + pad)

    def b64(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    segment = b64(json.dumps(caveat, separators=(",", ":")).encode())
    new_mac = hmac.new(key, segment.encode(), hashlib.sha256).digest()
    return body + "." + segment + "." + b64(new_mac)


class EngramError(Exception):
    """An error answer of the API: code (e.g. "permission_denied"), status,
    message."""

    def __init__(self, status, code, message):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Client:
    def __init__(self, url, agent=None, token=None, cert=None, key=None,
                 ca=None, timeout=15.0, instance=None):
        """url: https://host:port of engramd's API. agent: the agent the
        credential names (memory calls go to /v1/agents/<agent>/...).
        token: a bearer token. cert/key: a client certificate and its key.
        ca: the cluster's CA certificate (the server's is checked against
        it, with its name). instance: the agent's instance to act as."""
        self.url = url.rstrip("/")
        self.agent = agent
        self.token = token
        self.timeout = timeout
        self.instance = instance
        self.context = None
        if self.url.startswith("https:"):
            self.context = ssl.create_default_context(cafile=ca)
            self.context.minimum_version = ssl.TLSVersion.TLSv1_3
            if cert:
                self.context.load_cert_chain(cert, key)

    # -- plumbing ------------------------------------------------------------

    def _path(self, *parts, query=None):
        path = "/".join(urllib.parse.quote(str(p), safe="") for p in parts)
        q = dict(query or {})
        if self.instance:
            q["instance"] = self.instance
        q = {k: v for k, v in q.items() if v is not None}
        return "/" + path + ("?" + urllib.parse.urlencode(q) if q else "")

    def _agent_path(self, *parts, query=None):
        if not self.agent:
            raise ValueError("this call needs the agent (Client(agent=...))")
        return self._path("v1", "agents", self.agent, *parts, query=query)

    def request(self, method, path, body=None, stream=False):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            resp = urllib.request.urlopen(req, timeout=self.timeout,
                                          context=self.context)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)
                raise EngramError(e.code, err.get("code"),
                                  err.get("message")) from None
            except (ValueError, AttributeError):
                raise EngramError(e.code, "http_error",
                                  raw.decode(errors="replace")) from None
        if stream:
            return resp
        with resp:
            raw = resp.read()
            return json.loads(raw) if raw else None

    # -- memory ----------------------------------------------------------------

    def status(self):
        return self.request("GET", self._path("v1", "status"))

    def learn(self, key=None, value=None, subject=None, relation=None,
              obj=None, confidence=None, type=None, federation=None,
              scope=None, min_nodes=None, timeout_ms=None):
        """A fact (key, value) or a belief (subject, relation, obj); its id.
        scope="universal": decided by consensus (learn_with_consensus),
        answered once committed; min_nodes and timeout_ms as QuorumConfig."""
        body = {}
        if key is not None:
            body.update(key=key, value=value)
        else:
            body.update(subject=subject, relation=relation, object=obj)
        for k, v in (("confidence", confidence), ("type", type),
                     ("federation", federation), ("scope", scope),
                     ("min_nodes", min_nodes), ("timeout_ms", timeout_ms)):
            if v is not None:
                body[k] = v
        return self.request("POST", self._agent_path("memories"), body)["id"]

    def query(self, subject=None, relation=None, type=None, limit=None,
              federation=None, consistency=None, contested=None, scope=None):
        """scope="universal": the Universal scope, read linearizably (each
        memory says consistency "consensus")."""
        q = {"subject": subject, "relation": relation, "type": type,
             "limit": limit, "federation": federation,
             "consistency": consistency, "scope": scope,
             "contested": None if contested is None else str(contested).lower()}
        return self.request("GET", self._agent_path("memories", query=q))

    def forget(self, engram_id, reason=None):
        return self.request("DELETE", self._agent_path(
            "memories", engram_id, query={"reason": reason}))["id"]

    def archive(self, engram_id):
        return self.request("POST",
                            self._agent_path("memories", engram_id, "archive"))

    def sync(self):
        return self.request("POST", self._agent_path("sync"))

    # -- sharing ---------------------------------------------------------------

    def share(self, to, filter=None, transform=None, read_only=True):
        body = {"to": to, "read_only": read_only}
        if filter:
            body["filter"] = filter
        if transform:
            body["transform"] = transform
        return self.request("POST", self._agent_path("shares"), body)["share"]

    def shares(self):
        return self.request("GET", self._agent_path("shares"))

    def accept(self, share_id, trust=1.0, sender=None):
        body = {"trust": trust}
        if sender:
            body["from"] = sender
        return self.request("POST", self._agent_path(
            "shares", share_id, "accept"), body)["accepted"]

    def decline(self, share_id):
        return self.request("POST",
                            self._agent_path("shares", share_id, "decline"))

    # -- messages --------------------------------------------------------------

    def tell(self, to, text):
        return self.request("POST", self._agent_path("messages"),
                            {"to": to, "text": text})

    def ask(self, to, question, timeout_ms=5000):
        return self.request("POST", self._agent_path("questions"),
                            {"to": to, "question": question,
                             "timeout_ms": timeout_ms})["answer"]

    def inbox(self):
        return self.request("GET", self._agent_path("inbox"))

    def broadcast(self, federation, text):
        return self.request("POST", self._agent_path("broadcasts"),
                            {"federation": federation, "text": text})

    # -- federations -----------------------------------------------------------

    def create_federation(self, name, members=(), trust=None, beliefs=None):
        body = {"name": name, "members": list(members)}
        if trust:
            body["trust"] = trust
        if beliefs:
            body["beliefs"] = beliefs
        return self.request("POST", self._agent_path("federations"), body)

    def federation(self, fed):
        return self.request("GET", self._agent_path("federations", fed))

    def invite(self, fed, member, role="member", ttl_seconds=86400):
        """Leader only: lets `member` join as `role` (0 s: never lapses)."""
        return self.request("PUT", self._agent_path(
            "federations", fed, "invitations", member),
            {"role": role, "ttl_seconds": ttl_seconds})

    def uninvite(self, fed, member):
        return self.request("DELETE", self._agent_path(
            "federations", fed, "invitations", member))

    def join(self, fed, role="member"):
        return self.request("POST", self._agent_path("federations", fed,
                                                     "join"), {"role": role})

    def leave(self, fed):
        return self.request("POST",
                            self._agent_path("federations", fed, "leave"))

    def set_role(self, fed, member, role):
        return self.request("PUT", self._agent_path(
            "federations", fed, "members", member), {"role": role})

    # -- conflicts -------------------------------------------------------------

    def conflicts(self, federation=None):
        return self.request("GET", self._agent_path(
            "conflicts", query={"federation": federation}))

    def answer(self, conflict_id, option, federation=None):
        body = {"option": option}
        if federation:
            body["federation"] = federation
        return self.request("POST", self._agent_path(
            "conflicts", conflict_id, "answer"), body)

    # -- watching --------------------------------------------------------------

    def watch(self):
        """Yields each change of the agent's memory (a dict) as it arrives;
        closes when the iteration stops."""
        resp = self.request("GET", self._agent_path("watch"), stream=True)
        try:
            data = []
            for raw in resp:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif line == "" and data:
                    yield json.loads("\n".join(data))
                    data = []
        finally:
            resp.close()
