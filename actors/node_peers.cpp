// The node's peers prove their node id (TLS): the challenges this node
// gives, its own proof, and the check of a node asking to be a peer.

#include "actors/internal/node_state.hpp"
#include "actors/tls.hpp"

#include <caf/io/middleman.hpp>

#include <openssl/crypto.h>

#include <algorithm>
#include <ctime>

#include "pki/pki.hpp"

namespace engram::actors {

namespace {

void refuse_peer(node_ptr self, const std::string& peer_node,
                 const std::string& why) {
  auto& st = self->state;
  if (auto& handler = st.ctx->config.on_event)
    handler("peer_refused", {{"node", st.ctx->config.node_id},
                             {"peer", peer_node},
                             {"reason", why}});
}

} // namespace

// A node asking to be a peer proves its id (TLS): a certificate of this
// node's CA, valid, not revoked, naming `peer_node`, and its signature of a
// challenge given here. Refusals are logged with the reason.
void peer_request(node_ptr self, const std::string& peer_node, peer_actor peer,
                  const std::string& cert_pem, const std::string& nonce,
                  const std::string& signature,
                  const std::string& signing_key) {
  auto& st = self->state;
  auto refuse = [&](const std::string& why) {
    refuse_peer(self, peer_node, why);
  };
  if (cert_pem.empty()) { // this process's own code (node::add_peer)
    auto& token = st.ctx->local_token;
    if (nonce.size() != token.size()
        || CRYPTO_memcmp(nonce.data(), token.data(), token.size()) != 0)
      return refuse("no certificate and not this process's token");
    register_peer(self, peer_node, std::move(peer), signing_key);
    return;
  }
  auto& id = st.ctx->identity;
  if (!id)
    return refuse("this node runs without TLS: it cannot check a proof");
  auto issued = st.challenges.find(nonce);
  if (issued == st.challenges.end()
      || issued->second < std::chrono::steady_clock::now())
    return refuse("the challenge was not given here, was used, or expired");
  st.challenges.erase(issued);
  auto cert = pki::certificate::from_pem(cert_pem, "the peer's certificate");
  if (!cert)
    return refuse(cert.error_value().message);
  auto now = static_cast<int64_t>(std::time(nullptr));
  if (auto ok = pki::verify(*cert, id->ca, id->crl ? &*id->crl : nullptr, now,
                            pki::role::node, peer_node);
      !ok)
    return refuse(ok.error_value().message);
  if (!pki::verify_signature(*cert,
                             proof_message("peer", nonce, peer_node,
                                           st.ctx->config.node_id, signing_key),
                             signature))
    return refuse("the signature does not verify with the certificate of "
                  + peer_node);
  // This node signs its envelopes: its peers must sign theirs (the key is
  // bound to the certificate by the signature just checked).
  if (st.ctx->signer && signing_key.size() != crypto::ed25519_public_bytes)
    return refuse("no envelope-signing key (every envelope must be signed)");
  // The proof is bound to the connection it came over: that connection's
  // TLS certificate must name peer_node too (a node holding a certificate
  // of its own cannot pass on another node's proof). CAF tells which
  // connection carries the sender's messages.
  auto& sender = self->current_sender();
  if (!sender || !peer || sender->node() != peer.node())
    return refuse("the peer's handle is not of the process that asked");
  auto mm = self->system().middleman().actor_handle();
  self->request(mm, std::chrono::seconds{5}, caf::get_atom::value,
                sender->node())
      .then(
          [=](const caf::node_id&, const std::string& addr,
              uint16_t port) mutable {
            if (auto why = not_node_connection(addr, port, peer_node);
                !why.empty())
              return refuse_peer(self, peer_node, why);
            register_peer(self, peer_node, std::move(peer), signing_key);
          },
          [=](caf::error& e) {
            refuse_peer(self, peer_node,
                        "cannot tell which connection the proof came over: "
                            + from_caf(e).message);
          });
}

namespace {

std::string replay_note(const std::string& peer_node) {
  return "replay/" + peer_node;
}

// The kept window's floor for `key` (0: none kept for that key).
uint64_t kept_floor(node_ptr self, const std::string& peer_node,
                    const std::string& key) {
  auto& db = self->state.ctx->db;
  if (!db)
    return 0;
  auto note = db->get_note(replay_note(peer_node));
  if (!note) {
    // Cannot tell what was accepted before: said, and started afresh (the
    // peer's key is of its current run: only its envelopes since then
    // could be replayed).
    auto& st = self->state;
    if (auto& handler = st.ctx->config.on_event)
      handler("replay_window_lost", {{"node", st.ctx->config.node_id},
                                     {"peer", peer_node},
                                     {"reason", note.error_value().message}});
    return 0;
  }
  if (!*note || (*note)->size() != key.size() + 8
      || (*note)->compare(0, key.size(), key) != 0)
    return 0;
  uint64_t high = 0;
  for (size_t i = 0; i < 8; ++i)
    high = (high << 8) | static_cast<unsigned char>((**note)[key.size() + i]);
  return high;
}

void keep_window(node_ptr self, const std::string& peer_node,
                 node_state::peer_signer& s) {
  auto& db = self->state.ctx->db;
  if (!db || s.window.high() <= s.kept)
    return;
  auto value = s.key;
  for (int i = 7; i >= 0; --i)
    value.push_back(static_cast<char>(s.window.high() >> (8 * i)));
  if (db->put_note(replay_note(peer_node), value))
    s.kept = s.window.high();
}

} // namespace

void use_signing_key(node_ptr self, const std::string& peer_node,
                     const std::string& key) {
  auto& st = self->state;
  if (key.empty()) {
    st.signers.erase(peer_node);
    return;
  }
  auto& s = st.signers[peer_node];
  if (s.key == key)
    return; // the same run of that peer: its window goes on
  // Another run of the peer (or this node restarted): what was accepted
  // from this key before a restart stays refused.
  auto floor = kept_floor(self, peer_node, key);
  s.key = key;
  s.window = crypto::replay_window{floor};
  s.kept = floor;
}

bool authentic_frame(node_ptr self, const wire_frame& frame) {
  auto& st = self->state;
  auto refuse = [&](const std::string& why) {
    ++st.refused_frames;
    auto now = std::chrono::steady_clock::now();
    if (now - st.refusal_logged >= std::chrono::seconds{1}) {
      st.refusal_logged = now;
      if (auto& handler = st.ctx->config.on_event)
        handler("envelope_refused",
                {{"node", st.ctx->config.node_id},
                 {"peer", frame.from_node},
                 {"agent", frame.agent},
                 {"reason", why},
                 {"refused", std::to_string(st.refused_frames)}});
      st.refused_frames = 0;
    }
    return false;
  };
  auto s = st.signers.find(frame.from_node);
  if (s == st.signers.end())
    return !st.ctx->signer // a node that signs takes only signed envelopes
           || refuse("the peer has no envelope-signing key");
  // Signed for this node and the agent the frame names: a frame moved to
  // another agent or node does not verify.
  auto seq = messages::verify_envelope(
      frame.envelope, s->second.key,
      messages::route(frame.from_node, st.ctx->config.node_id, frame.agent));
  if (!seq)
    return refuse(seq.error_value().message);
  if (!s->second.window.accept(*seq))
    return refuse("a replayed envelope (sequence " + std::to_string(*seq)
                  + " was accepted before or is too old)");
  keep_window(self, frame.from_node, s->second);
  return true;
}

std::string issue_challenge(node_ptr self) {
  auto& st = self->state;
  auto now = std::chrono::steady_clock::now();
  for (auto i = st.challenges.begin(); i != st.challenges.end();)
    i = i->second < now ? st.challenges.erase(i) : std::next(i);
  if (st.challenges.size() >= 1024) { // bounded: the oldest goes
    auto oldest = std::min_element(st.challenges.begin(), st.challenges.end(),
                                   [](const auto& x, const auto& y) {
                                     return x.second < y.second;
                                   });
    st.challenges.erase(oldest);
  }
  auto nonce = pki::random_bytes(32);
  st.challenges.emplace(nonce, now + std::chrono::minutes{1});
  return nonce;
}

caf::result<std::string, std::string, std::string>
prove_identity(node_ptr self, const std::string& challenge) {
  auto& st = self->state;
  if (!st.ctx->identity)
    return to_caf(
        make_error(errc::unauthenticated, "node " + st.ctx->config.node_id
                                              + " runs without TLS: it has no "
                                                "certificate to prove its id"));
  if (challenge.size() != 32)
    return to_caf(
        make_error(errc::invalid_argument, "a challenge is 32 bytes"));
  auto signing_key
      = st.ctx->signer ? st.ctx->signer->public_key() : std::string{};
  auto sig = st.ctx->identity->key.sign(proof_message(
      "node-proof", challenge, st.ctx->config.node_id, {}, signing_key));
  if (!sig)
    return to_caf(sig.error_value());
  return {st.ctx->identity->cert_pem, std::move(*sig), signing_key};
}

} // namespace engram::actors
