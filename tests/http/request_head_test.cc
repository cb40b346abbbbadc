// request_head: the upstream request head (Host, hop-by-hop and Connection-nominated fields,
// our own version, Via, Max-Forwards) and every refusal of RFC 9112 §2.3, §3, §6.1 and
// RFC 9110 §7.6 as its RewriteError, string in → string or enum out.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "tokentap/http/http1.h"

namespace tokentap {
namespace {

struct Result {
  std::string out;
  RewriteError err = RewriteError::ok;
  HeadFacts facts;
};

Result rewrite_with(std::string_view raw, const RewriteOptions& opt) {
  static char out[head_bytes_max + 512];
  std::size_t len = 0;
  Result r;
  r.err = rewrite_request_head(raw, opt, out, sizeof(out), &len, &r.facts);
  if (r.err == RewriteError::ok) r.out.assign(out, len);
  return r;
}

Result rw(std::string_view raw, bool preserve = false) {
  return rewrite_with(raw, {"127.0.0.1:11434", preserve});
}

std::string rewrite(std::string_view raw, bool preserve = false) { return rw(raw, preserve).out; }

RewriteError error_of(std::string_view raw) { return rw(raw).err; }

TEST(RequestHead, ReplacesHostInPlace) {
  const Result r =
      rw("POST /api/chat HTTP/1.1\r\nHost: proxy.example.com\r\nContent-Length: 2\r\n\r\n");
  EXPECT_EQ(r.out,
            "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nContent-Length: 2\r\n"
            "Via: 1.1 tokentap\r\n\r\n");
  EXPECT_EQ(r.facts.method, "POST");
  EXPECT_EQ(r.facts.target, "/api/chat");
  EXPECT_EQ(r.facts.host, "proxy.example.com");
  EXPECT_TRUE(r.facts.has_host);
  EXPECT_FALSE(r.facts.http10);
}

TEST(RequestHead, PreserveHostKeepsTheClients) {
  EXPECT_EQ(rewrite("GET / HTTP/1.1\r\nHost: proxy.example.com\r\n\r\n", true),
            "GET / HTTP/1.1\r\nHost: proxy.example.com\r\nVia: 1.1 tokentap\r\n\r\n");
}

TEST(RequestHead, Http10WithoutHostGetsTheUpstreamsAndOurVersion) {
  // RFC 9110 §2.5: the proxy sends its own version; a 1.1 request line needs a Host.
  const Result r = rw("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(r.out,
            "GET / HTTP/1.1\r\nAccept: */*\r\nHost: 127.0.0.1:11434\r\nVia: 1.0 tokentap\r\n\r\n");
  EXPECT_TRUE(r.facts.http10);
  EXPECT_FALSE(r.facts.has_host);
  EXPECT_EQ(rewrite("GET / HTTP/1.0\r\n\r\n", true),
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nVia: 1.0 tokentap\r\n\r\n");
}

TEST(RequestHead, EmptyLinesBeforeTheRequestLineAreIgnored) {
  // RFC 9112 §2.2; the proxy hands over the head as received, llhttp having skipped them.
  EXPECT_EQ(rewrite("\r\n\r\nGET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n"),
            "GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nVia: 1.1 tokentap\r\n\r\n");
  EXPECT_EQ(error_of("\nGET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n"), RewriteError::bad_head);
}

TEST(RequestHead, HigherMinorVersionIsHttp11) {
  // RFC 9112 §2.3: a higher minor version of a supported major is processed as the highest.
  const Result r = rw("GET /api/tags HTTP/1.2\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.err, RewriteError::ok);
  EXPECT_EQ(r.out, "GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nVia: 1.1 tokentap\r\n\r\n");
  EXPECT_FALSE(r.facts.http10);
}

TEST(RequestHead, OtherMajorVersionsAre505) {
  for (const char* v : {"2.0", "0.9", "3.0", "9.9"}) {
    const std::string raw = std::string("GET /api/tags HTTP/") + v + "\r\nHost: x\r\n\r\n";
    EXPECT_EQ(error_of(raw), RewriteError::bad_version) << v;
  }
  EXPECT_EQ(refusal_of(RewriteError::bad_version).status, 505);
}

TEST(RequestHead, DropsHopByHopAndConnectionNamedHeaders) {
  const Result r =
      rw("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret, Upgrade\r\n"
         "Keep-Alive: timeout=5\r\nX-Secret: 1\r\nUpgrade: websocket\r\nTE: trailers\r\n"
         "Proxy-Connection: keep-alive\r\nTransfer-Encoding: chunked\r\nX-Other: 2\r\n\r\n");
  EXPECT_EQ(r.out,
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nTransfer-Encoding: chunked\r\n"
            "X-Other: 2\r\nVia: 1.1 tokentap\r\n\r\n");
  EXPECT_FALSE(r.facts.connection_close);
  EXPECT_TRUE(r.facts.upgrade);
}

TEST(RequestHead, RemovesEveryNominatedFieldUpToTheLimit) {
  // Issue 20: with a limit of 8, X-T8 and X-T9 reached the upstream.
  std::string list;
  std::string fields;
  for (std::size_t i = 0; i < connection_tokens_max; ++i) {
    list += (i ? ", X-T" : "X-T") + std::to_string(i);
    fields += "X-T" + std::to_string(i) + ": v\r\n";
  }
  const std::string raw = "GET / HTTP/1.1\r\nHost: x\r\nConnection: " + list + "\r\n" + fields +
                          "x-t9: lower case too\r\n\r\n";
  EXPECT_EQ(rewrite(raw), "GET / HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nVia: 1.1 tokentap\r\n\r\n");
  // One more than the limit is refused, never forwarded with a field left in.
  const std::string over = "GET / HTTP/1.1\r\nHost: x\r\nConnection: " + list +
                           "\r\nConnection: X-Extra\r\nX-Extra: 1\r\n\r\n";
  EXPECT_EQ(error_of(over), RewriteError::too_many_connection_options);
  EXPECT_EQ(refusal_of(RewriteError::too_many_connection_options).status, 400);
  // Standard hop-by-hop names and close/keep-alive take no slot.
  const std::string standard = "GET / HTTP/1.1\r\nHost: x\r\nConnection: " + list +
                               ", close, keep-alive, Upgrade, TE, Keep-Alive\r\n\r\n";
  EXPECT_EQ(error_of(standard), RewriteError::ok);
}

TEST(RequestHead, NominatingAFramingFieldIsRefused) {
  // Removing it would move the body's end for the upstream's parser: a smuggling shape.
  EXPECT_EQ(error_of("POST / HTTP/1.1\r\nHost: x\r\nConnection: Content-Length\r\n"
                     "Content-Length: 5\r\n\r\n"),
            RewriteError::bad_framing);
  EXPECT_EQ(error_of("POST / HTTP/1.1\r\nHost: x\r\nConnection: transfer-encoding\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n"),
            RewriteError::bad_framing);
  // Host is the proxy's to write: a nominated Host is not removed.
  EXPECT_EQ(rewrite("GET / HTTP/1.1\r\nHost: x\r\nConnection: Host\r\n\r\n"),
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nVia: 1.1 tokentap\r\n\r\n");
}

TEST(RequestHead, KeepsConnectionClose) {
  const Result r = rw("GET / HTTP/1.1\r\nConnection: Close\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.out,
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nVia: 1.1 tokentap\r\n"
            "Connection: close\r\n\r\n");
  EXPECT_TRUE(r.facts.connection_close);
}

TEST(RequestHead, Http10KeepAliveIsAFact) {
  Result r = rw("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_TRUE(r.facts.http10);
  EXPECT_TRUE(r.facts.keep_alive_10);
  EXPECT_EQ(r.out, "GET / HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nVia: 1.0 tokentap\r\n\r\n");
  r = rw("GET / HTTP/1.0\r\n\r\n");
  EXPECT_FALSE(r.facts.keep_alive_10);
  r = rw("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_FALSE(r.facts.keep_alive_10);  // only a 1.0 client's request counts
}

TEST(RequestHead, NotesExpectAndEncoding) {
  const Result r =
      rw("POST /api/blobs/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
         "Content-Encoding: zstd\r\nContent-Type: application/json\r\n\r\n");
  EXPECT_TRUE(r.facts.expect_continue);
  EXPECT_TRUE(r.facts.content_encoded);
  EXPECT_EQ(r.facts.content_type, "application/json");
  EXPECT_NE(r.out.find("Expect: 100-continue\r\n"), std::string::npos);
}

TEST(RequestHead, ExpectFromHttp10IsIgnored) {
  // RFC 9110 §10.1.1: a server MUST ignore a 100-continue expectation in an HTTP/1.0 request.
  const Result r =
      rw("POST /api/chat HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  EXPECT_FALSE(r.facts.expect_continue);
  EXPECT_EQ(r.out,
            "POST /api/chat HTTP/1.1\r\nContent-Length: 2\r\nHost: 127.0.0.1:11434\r\n"
            "Via: 1.0 tokentap\r\n\r\n");
}

TEST(RequestHead, HostRules) {
  // RFC 9112 §3.2: 400 for a 1.1 request without Host, two Host lines, or an invalid value.
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), RewriteError::duplicate_host);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), RewriteError::duplicate_host);
  EXPECT_EQ(error_of("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), RewriteError::duplicate_host);
  for (const char* bad : {"a b", "a/b", "user@h", "h:x", "[::1", "h:80:80", "%zz", "a\tb", "h?"}) {
    const std::string raw = std::string("GET / HTTP/1.1\r\nHost: ") + bad + "\r\n\r\n";
    EXPECT_EQ(error_of(raw), RewriteError::duplicate_host) << bad;
  }
  for (const char* good : {"", "h", "h:", "127.0.0.1:11434", "[::1]:80", "[::1]", "a%20b.c",
                           "xn--bcher-kva.example:8080"}) {
    const std::string raw = std::string("GET / HTTP/1.1\r\nHost: ") + good + "\r\n\r\n";
    EXPECT_EQ(error_of(raw), RewriteError::ok) << good;
  }
  EXPECT_EQ(refusal_of(RewriteError::duplicate_host).status, 400);
}

TEST(RequestHead, FragmentInTheTargetIsRefused) {
  EXPECT_EQ(error_of("GET /frag#section HTTP/1.1\r\nHost: x\r\n\r\n"), RewriteError::bad_target);
  EXPECT_EQ(error_of("GET http://h/a#b HTTP/1.1\r\nHost: x\r\n\r\n"), RewriteError::bad_target);
}

TEST(RequestHead, AbsoluteFormIsAcceptedAndForwardedInOriginForm) {
  // RFC 9112 §3.2.2: a server MUST accept absolute-form; the received Host is ignored.
  Result r =
      rw("POST http://ollama.example:11434/api/chat?x=1 HTTP/1.1\r\nHost: other\r\n"
         "Content-Length: 2\r\n\r\n");
  ASSERT_EQ(r.err, RewriteError::ok);
  EXPECT_EQ(r.out,
            "POST /api/chat?x=1 HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nContent-Length: 2\r\n"
            "Via: 1.1 tokentap\r\n\r\n");
  EXPECT_EQ(r.facts.target, "/api/chat?x=1");
  EXPECT_EQ(r.facts.host, "ollama.example:11434");
  EXPECT_TRUE(r.facts.absolute_form);
  r = rw("GET HTTPS://Ollama.Example/api/tags HTTP/1.1\r\nHost: other\r\n\r\n", true);
  EXPECT_EQ(r.out, "GET /api/tags HTTP/1.1\r\nHost: Ollama.Example\r\nVia: 1.1 tokentap\r\n\r\n");
  // A 1.0 absolute-form request without Host, preserve_host: the authority becomes Host.
  r = rw("GET http://h:1/x HTTP/1.0\r\n\r\n", true);
  EXPECT_EQ(r.out, "GET /x HTTP/1.1\r\nHost: h:1\r\nVia: 1.0 tokentap\r\n\r\n");
}

TEST(RequestHead, BadAbsoluteFormsAreRefused) {
  const char* bad[] = {
      "ftp://h/a", "http://user@h/a", "http://u:p@h/a", "http://h",      "http://h?q",
      "http:///a", "http:/a",         "mailto:x@y",     "http://[::1/a", "foo",
  };
  for (const char* target : bad) {
    const std::string raw = std::string("GET ") + target + " HTTP/1.1\r\nHost: x\r\n\r\n";
    EXPECT_EQ(error_of(raw), RewriteError::bad_target) << target;
  }
}

TEST(RequestHead, AsteriskFormOnlyForOptions) {
  EXPECT_EQ(rewrite("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"),
            "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nVia: 1.1 tokentap\r\n\r\n");
  EXPECT_EQ(error_of("GET * HTTP/1.1\r\nHost: x\r\n\r\n"), RewriteError::bad_target);
}

TEST(RequestHead, ConnectAndAuthorityFormAre405) {
  Result r = rw("CONNECT ollama.example:443 HTTP/1.1\r\nHost: ollama.example:443\r\n\r\n");
  EXPECT_EQ(r.err, RewriteError::method_not_allowed);
  EXPECT_TRUE(r.facts.connect);
  EXPECT_EQ(error_of("CONNECT /x HTTP/1.1\r\nHost: x\r\n\r\n"), RewriteError::method_not_allowed);
  EXPECT_EQ(error_of("GET ollama.example:443 HTTP/1.1\r\nHost: x\r\n\r\n"),
            RewriteError::method_not_allowed);
  const HttpRefusal refusal = refusal_of(RewriteError::method_not_allowed);
  EXPECT_EQ(refusal.status, 405);
  ASSERT_NE(refusal.allow, nullptr);
  EXPECT_EQ(std::strstr(refusal.allow, "CONNECT"), nullptr);
}

TEST(RequestHead, TransferEncodingInHttp10IsFaultyFraming) {
  // RFC 9112 §6.1: treat as faulty framing (400, then close).
  EXPECT_EQ(error_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            RewriteError::bad_framing);
  EXPECT_EQ(refusal_of(RewriteError::bad_framing).status, 400);
}

TEST(RequestHead, MaxForwardsForOptionsAndTrace) {
  // RFC 9110 §7.6.2: 0 → the recipient answers itself; otherwise forward it decremented.
  Result r = rw("OPTIONS * HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\n\r\n");
  EXPECT_TRUE(r.facts.max_forwards_zero);
  r = rw("OPTIONS /api/tags HTTP/1.1\r\nHost: x\r\nMax-Forwards: 5\r\n\r\n");
  EXPECT_FALSE(r.facts.max_forwards_zero);
  EXPECT_EQ(r.out,
            "OPTIONS /api/tags HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nMax-Forwards: 4\r\n"
            "Via: 1.1 tokentap\r\n\r\n");
  r = rw("TRACE / HTTP/1.1\r\nHost: x\r\nMax-Forwards: 99999999999999999999999\r\n\r\n");
  EXPECT_NE(r.out.find("Max-Forwards: 18446744073709551614\r\n"), std::string::npos) << r.out;
  r = rw("TRACE / HTTP/1.1\r\nHost: x\r\nmax-forwards: 0\r\n\r\n");
  EXPECT_TRUE(r.facts.max_forwards_zero);
  // Other methods: untouched; a value that is not a number: forwarded as is.
  r = rw("GET / HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\n\r\n");
  EXPECT_FALSE(r.facts.max_forwards_zero);
  EXPECT_NE(r.out.find("Max-Forwards: 0\r\n"), std::string::npos);
  r = rw("OPTIONS * HTTP/1.1\r\nHost: x\r\nMax-Forwards: x1\r\n\r\n");
  EXPECT_NE(r.out.find("Max-Forwards: x1\r\n"), std::string::npos);
}

TEST(RequestHead, ViaIsAppendedAfterTheClients) {
  // RFC 9110 §7.6.3: each intermediary appends its entry, in order.
  EXPECT_EQ(rewrite("GET / HTTP/1.1\r\nVia: 1.1 edge\r\nHost: x\r\nAccept: */*\r\n\r\n"),
            "GET / HTTP/1.1\r\nVia: 1.1 edge\r\nHost: 127.0.0.1:11434\r\nAccept: */*\r\n"
            "Via: 1.1 tokentap\r\n\r\n");
}

TEST(RequestHead, ReplacesContentLengthAndDropsAnsweredExpect) {
  RewriteOptions opt{"127.0.0.1:11434", false};
  opt.content_length = 12;
  opt.drop_expect = true;
  const Result r = rewrite_with(
      "POST /api/chat HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
      opt);
  EXPECT_EQ(r.out,
            "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nContent-Length: 12\r\n"
            "Via: 1.1 tokentap\r\n\r\n");
}

TEST(RequestHead, RejectsBareLfAndOversize) {
  EXPECT_EQ(error_of("GET / HTTP/1.1\nHost: x\r\n\r\n"), RewriteError::bad_head);
  const std::string big =
      "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(head_bytes_max, 'a') + "\r\n\r\n";
  EXPECT_EQ(error_of(big), RewriteError::too_large);
  // The output capacity is a limit too (Via and Host can make the head longer).
  char small[40];
  std::size_t len = 0;
  HeadFacts facts;
  EXPECT_EQ(rewrite_request_head("GET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n",
                                 {"127.0.0.1:11434", false}, small, sizeof(small), &len, &facts),
            RewriteError::too_large);
  EXPECT_EQ(refusal_of(RewriteError::too_large).status, 431);
}

TEST(RequestHead, RejectsSmugglingShapes) {
  const char* bad[] = {
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n",                 // space before the colon
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",  // obs-fold
      "GET / HTTP/1.1\r\nHost: x\r\n\tX-A: a\r\n\r\n",      // folded name
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01"
      "b\r\n\r\n",                                            // control character
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",       // bare CR
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\nX-B: b\r\n\r\n",  // bare LF
  };
  for (const char* raw : bad) EXPECT_EQ(error_of(raw), RewriteError::bad_head) << raw;
  EXPECT_EQ(error_of(std::string_view("GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n", 29)),
            RewriteError::bad_head)
      << "NUL in a value";
  const std::string long_target =
      "GET /" + std::string(target_bytes_max, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n";
  EXPECT_EQ(error_of(long_target), RewriteError::target_too_long);
  EXPECT_EQ(refusal_of(RewriteError::target_too_long).status, 414);
}

TEST(RequestHead, EveryRefusalHasAJsonSafeMessage) {
  const RewriteError all[] = {
      RewriteError::too_large,
      RewriteError::bad_head,
      RewriteError::bad_version,
      RewriteError::duplicate_host,
      RewriteError::bad_target,
      RewriteError::bad_framing,
      RewriteError::too_many_connection_options,
      RewriteError::method_not_allowed,
      RewriteError::target_too_long,
  };
  for (const RewriteError e : all) {
    const HttpRefusal r = refusal_of(e);
    EXPECT_GE(r.status, 400);
    EXPECT_LT(r.status, 600);
    ASSERT_NE(r.reason, nullptr);
    ASSERT_NE(r.message, nullptr);
    EXPECT_EQ(std::strncmp(r.message, "tokentap: ", 10), 0) << r.message;
    EXPECT_EQ(std::strpbrk(r.message, "\"\\"), nullptr) << r.message;
    EXPECT_EQ(r.allow != nullptr, r.status == 405);
  }
}

TEST(RequestHead, BackendPinIsReadAndNeverForwarded) {
  const Result r = rw("POST /api/chat HTTP/1.1\r\nHost: x\r\nx-tokentap-backend: gpu3\r\n"
                      "Content-Length: 2\r\n\r\n");
  ASSERT_EQ(r.err, RewriteError::ok);
  EXPECT_EQ(r.facts.backend_pin, "gpu3");
  EXPECT_EQ(r.out.find("gpu3"), std::string::npos) << r.out;
  EXPECT_EQ(rw("GET / HTTP/1.1\r\nHost: x\r\n\r\n").facts.backend_pin, "");
}

}  // namespace
}  // namespace tokentap
