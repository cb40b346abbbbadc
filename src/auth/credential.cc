// credential: the rules of credential.h, over string views.
#include "tokentap/auth/credential.h"

namespace tokentap::auth {
namespace {

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view v) {
  while (!v.empty() && is_ows(v.front())) v.remove_prefix(1);
  while (!v.empty() && is_ows(v.back())) v.remove_suffix(1);
  return v;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view lower_b) {
  if (a.size() != lower_b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower_b[i]) return false;
  }
  return true;
}

void see(CredentialFields::Seen* seen, std::string_view value) {
  value = trim(value);
  if (seen->count == 0) {
    seen->value = value;
  } else if (value != seen->value) {
    seen->differs = true;
  }
  ++seen->count;
}

}  // namespace

bool is_credential_field(std::string_view name) {
  return iequals(name, "authorization") || iequals(name, "x-api-key");
}

bool CredentialFields::on_field(std::string_view name, std::string_view value) {
  if (iequals(name, "authorization")) {
    see(&authorization_, value);
    return true;
  }
  if (iequals(name, "x-api-key")) {
    see(&x_api_key_, value);
    return true;
  }
  return false;
}

std::string_view bearer_secret(std::string_view authorization) {
  authorization = trim(authorization);
  std::size_t end = 0;
  while (end < authorization.size() && !is_ows(authorization[end])) ++end;
  if (!iequals(authorization.substr(0, end), "bearer")) return {};
  return trim(authorization.substr(end));
}

Credential extract_credential(const CredentialFields& fields) {
  const CredentialFields::Seen& auth = fields.authorization();
  const CredentialFields::Seen& key = fields.x_api_key();
  // A repeated field with two values is two secrets, whatever their schemes.
  if (auth.differs || key.differs) return Credential{CredentialKind::conflict, {}};
  const std::string_view bearer = auth.count > 0 ? bearer_secret(auth.value) : std::string_view{};
  const std::string_view api_key = key.count > 0 ? key.value : std::string_view{};
  if (!bearer.empty() && !api_key.empty()) {
    if (bearer != api_key) return Credential{CredentialKind::conflict, {}};
    return Credential{CredentialKind::secret, bearer};
  }
  if (!bearer.empty()) return Credential{CredentialKind::secret, bearer};
  if (!api_key.empty()) return Credential{CredentialKind::secret, api_key};
  return Credential{};
}

}  // namespace tokentap::auth
