// ollama_line: recognises, in one pass, the NDJSON line Ollama streams for every generated token
// (a flat object whose last member is "done":false), so that TailScanner can count it as an
// output piece without walking it token by token through JsonSkim. On a 32-token stream those
// lines are all but one of the body; the general path spent ~75 ns a line on dispatch alone.
//
// Exactness. It answers yes only for a line that JsonSkim, fed the same bytes with a spec whose
// paths are all one root key, reads as one well-formed document in which the only member any
// path wants is the final "done":false:
//   '{' member (',' member)* ',"done":false}' with no whitespace anywhere (Go's encoding/json
//   writes none), or exactly '{"done":false}';
//   member = plain key (no escape, no control byte) that no path names, ':' and a value read as
//   JsonSkim reads a value nobody keeps: a string (escapes followed, contents unchecked), a
//   number or literal (checked by JsonSkim::skip_plain_scalar), or a container (strings and
//   bracket matching only, at most byte_scan::skip_container_nest_max deep).
// If the line ends with that tail and is valid JSON, the tail's "done" is the root's last key
// (a quote preceded by 'e' closes a string, and the '}' closes the root), so no context beyond
// the line is needed. Any other line is a no and goes through JsonSkim exactly as before; a no
// costs at most one extra pass over that line (the tail is checked first, so the final
// done:true line, however long its `context`, costs nothing extra).
// No state, no allocation, no kernel features.
#pragma once

#include <string_view>

#include "tokentap/meter/json_skim.h"

namespace tokentap {

// line: one NDJSON line without its '\n'. spec: the skimmer's (every path one root key, keys
// compared exactly), whose key pre-filter rules most keys out without a comparison.
[[nodiscard]] bool is_ollama_piece_line(std::string_view line, const SkimSpec& spec);

}  // namespace tokentap
