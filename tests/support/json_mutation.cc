#include "json_mutation.h"

#include <cstddef>
#include <string_view>

namespace tokentap::test {

std::string mutate_json(std::string text, std::mt19937& rng) {
  constexpr std::string_view alphabet = "{}[]\",:\\ \nx0-.etrufaln";
  const int edits = 1 + static_cast<int>(rng() % 3);
  for (int e = 0; e < edits && !text.empty(); ++e) {
    const std::size_t at = rng() % text.size();
    const char c = alphabet[rng() % alphabet.size()];
    switch (rng() % 3) {
      case 0:
        text[at] = c;
        break;
      case 1:
        text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), c);
        break;
      default:
        text.erase(at, 1);
        break;
    }
  }
  return text;
}

}  // namespace tokentap::test
