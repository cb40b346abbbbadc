// credential: the secret a request presents, read from its head's field values. Pure: string
// views into the head in, a view of the secret out; no allocation, no copy.
//
// Accepted forms (docs/keys.md "Credentials"):
//  - `Authorization: Bearer SECRET` (OpenAI SDKs, ollama-js headers, Claude Code's
//    ANTHROPIC_AUTH_TOKEN). The scheme is matched case-insensitively (RFC 9110 §11.1); one or
//    more spaces or tabs may follow it. Another scheme (Basic, Digest) is not a tokentap
//    credential: it is ignored here, and the field is forwarded or removed like any credential.
//  - `x-api-key: SECRET` (the Anthropic SDK).
// Values are trimmed of the optional whitespace around them (RFC 9110 §5.5).
//
// Both present with the same secret: that secret. Both present with different secrets, or one
// field repeated with different values: `conflict`, refused with 401. tokentap never guesses
// which of two secrets a client meant: either could be someone else's key, and a proxy that
// picks one lets a client be charged to whichever key it chose.
#pragma once

#include <string_view>

namespace tokentap::auth {

// The credential fields of one request head, fed field by field from the proxy's scan of the
// head (the same loop that rewrites it), so no second pass over the head is needed.
class CredentialFields {
 public:
  // Records the field when it is Authorization or x-api-key (name case-insensitive) and returns
  // true for those (the proxy removes them unless --forward-auth). Views must outlive the
  // extraction: they point into the request head.
  bool on_field(std::string_view name, std::string_view value);

  struct Seen {
    std::string_view value;  // the first value, trimmed
    int count = 0;           // field lines seen
    bool differs = false;    // a later line had another value
  };
  [[nodiscard]] const Seen& authorization() const { return authorization_; }
  [[nodiscard]] const Seen& x_api_key() const { return x_api_key_; }

 private:
  Seen authorization_;
  Seen x_api_key_;
};

enum class CredentialKind {
  none,      // no secret: no field, an empty one, or a non-Bearer Authorization
  secret,    // `secret` holds it
  conflict,  // two different secrets (401)
};

struct Credential {
  CredentialKind kind = CredentialKind::none;
  std::string_view secret;  // a view into the head when kind == secret
};

// True for the two field names a credential travels in (case-insensitive).
[[nodiscard]] bool is_credential_field(std::string_view name);

// The Bearer secret of an Authorization value, or "" when it is another scheme or empty.
[[nodiscard]] std::string_view bearer_secret(std::string_view authorization);

[[nodiscard]] Credential extract_credential(const CredentialFields& fields);

}  // namespace tokentap::auth
