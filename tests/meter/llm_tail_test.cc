// TailScanner and SseLexer: every response scenario of wire-format.md, built byte for byte from
// its examples, gives the right numbers; every split of every scenario gives the same Usage.
#include "tokentap/meter/llm_tail.h"

#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <string>
#include <vector>

namespace tokentap {
namespace {

using Opt = std::optional<std::uint64_t>;

struct Expect {
  Opt prompt, completion, load_ns, prompt_eval_ns, eval_ns, total_ns;
  std::uint32_t output_events = 0;
  bool found = false;
  bool missing = false;
  bool error = false;
};

struct Scenario {
  const char* name;
  Route route;
  int status;
  std::string body;
  Expect expect;
};

std::string describe(const Usage& u) {
  std::string s;
  const char* names[] = {"prompt", "completion", "load", "prompt_eval", "eval", "total"};
  for (std::size_t i = 0; i < usage_field_count; ++i) {
    const auto v = u.get(static_cast<UsageField>(i));
    s += std::string(names[i]) + "=" + (v ? std::to_string(*v) : "-") + " ";
  }
  s += "out=" + std::to_string(u.output_events) + " first=" + std::to_string(u.first_output_ns) +
       " last=" + std::to_string(u.last_output_ns) + (u.usage_found ? " found" : "") +
       (u.usage_missing ? " missing" : "") + (u.error_seen ? " error" : "");
  return s;
}

std::string describe(const Expect& e) {
  Usage u;
  const Opt* fields[] = {&e.prompt,         &e.completion, &e.load_ns,
                         &e.prompt_eval_ns, &e.eval_ns,    &e.total_ns};
  for (std::size_t i = 0; i < usage_field_count; ++i) {
    if (*fields[i]) u.set(static_cast<UsageField>(i), **fields[i]);
  }
  u.output_events = e.output_events;
  u.first_output_ns = u.last_output_ns = e.output_events > 0 ? 7 : 0;
  u.usage_found = e.found;
  u.usage_missing = e.missing;
  u.error_seen = e.error;
  return describe(u);
}

PieceParser& parser() {
  static PieceParser p;
  return p;
}

Usage scan(Route route, int status, const std::vector<std::string>& pieces, std::uint64_t now = 7) {
  TailScanner t;
  t.init(route, status, &parser());
  for (const std::string& piece : pieces) t.feed(piece.data(), piece.size(), now);
  return t.finish();
}

void expect_split_invariant(const Scenario& s) {
  const std::string whole = describe(scan(s.route, s.status, {s.body}));
  for (std::size_t cut = 0; cut <= s.body.size(); ++cut) {
    ASSERT_EQ(describe(scan(s.route, s.status, {s.body.substr(0, cut), s.body.substr(cut)})), whole)
        << "cut " << cut;
  }
  std::vector<std::string> bytes;
  for (char c : s.body) bytes.emplace_back(1, c);
  ASSERT_EQ(describe(scan(s.route, s.status, bytes)), whole) << "1-byte feeds";
  std::mt19937 rng(99);
  for (int round = 0; round < 40; ++round) {
    std::vector<std::string> pieces;
    for (std::size_t at = 0; at < s.body.size();) {
      const std::size_t n = std::min<std::size_t>(s.body.size() - at, 1 + rng() % 40);
      pieces.push_back(s.body.substr(at, n));
      at += n;
    }
    ASSERT_EQ(describe(scan(s.route, s.status, pieces)), whole) << "round " << round;
  }
}

// ---- Bodies from wire-format.md -------------------------------------------------------------

const std::string created = R"("created_at":"2026-08-24T14:00:11.519610579Z")";
const std::string context =
    "[128000,128006,9125,128007,271,38766,1303,33025,2696,25,6790,220,2366,18,198,15724,2696,25,"
    "220,1419,4047,220,2366,20,271,128009]";
const std::string gen_metrics =
    R"("total_duration":557637585,"load_duration":14213406,"prompt_eval_count":46,)"
    R"("prompt_eval_duration":21418000,"eval_count":75,"eval_duration":519493000)";

std::string gen_line(const std::string& response) {
  return R"({"model":"llama3.2",)" + created + R"(,"response":")" + response +
         R"(","done":false})" + "\n";
}
const std::string gen_done = R"({"model":"llama3.2",)" + created +
                             R"(,"response":"","done":true,"done_reason":"stop","context":)" +
                             context + "," + gen_metrics + "}\n";

const std::string chat_metrics =
    R"("total_duration":4883583458,"load_duration":1334875,"prompt_eval_count":208,)"
    R"("prompt_eval_duration":130000000,"eval_count":80,"eval_duration":4710000000)";
std::string chat_line(const std::string& message) {
  return R"({"model":"qwen3:8b",)" + created + R"(,"message":)" + message + R"(,"done":false})" +
         "\n";
}
const std::string chat_stream =
    chat_line(R"({"role":"assistant","content":"","thinking":"Okay"})") +
    chat_line(R"({"role":"assistant","content":"No"})") +
    chat_line(R"({"role":"assistant","content":"","tool_calls":[{"id":"call_k7m2x9qa","function":)"
              R"({"index":0,"name":"get_current_weather","arguments":{"city":"Paris",)"
              R"("unit":"celsius"}}}]})") +
    R"({"model":"qwen3:8b",)" + created +
    R"(,"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop",)" +
    chat_metrics + "}\n";

std::string oa_chunk(const std::string& choices, const std::string& model = "llama3.2") {
  return R"(data: {"id":"chatcmpl-318","object":"chat.completion.chunk","created":1787580250,)"
         R"("model":")" +
         model + R"(","system_fingerprint":"fp_ollama","choices":)" + choices + "}\n\n";
}
std::string oa_delta(const std::string& delta, const char* finish = "null") {
  return oa_chunk(R"([{"index":0,"delta":)" + delta + R"(,"finish_reason":)" + finish + "}]");
}
const std::string oa_usage_chunk =
    R"(data: {"id":"chatcmpl-318","object":"chat.completion.chunk","created":1787580250,)"
    R"("model":"llama3.2","system_fingerprint":"fp_ollama","choices":[],)"
    R"("usage":{"prompt_tokens":32,"completion_tokens":34,"total_tokens":66}})"
    "\n\n";
const std::string oa_chat_body =
    oa_delta(R"({"role":"assistant","content":"The"})") + oa_delta(R"({"content":" three"})") +
    oa_delta(R"({"content":" primary"})") + oa_delta("{}", R"("stop")");
const std::string done_event = "data: [DONE]\n\n";

std::string cmpl_chunk(const std::string& choices, const std::string& usage) {
  return R"(data: {"id":"cmpl-42","object":"text_completion","created":1787580250,"choices":)" +
         choices + R"(,"model":"llama3.2","system_fingerprint":"fp_ollama")" + usage + "}\n\n";
}
const std::string zero_usage =
    R"(,"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0})";
std::string cmpl_text(const std::string& text, const char* finish, const std::string& usage) {
  return cmpl_chunk(R"([{"text":")" + text + R"(","index":0,"finish_reason":)" + finish + "}]",
                    usage);
}

std::string event(const std::string& name, const std::string& data) {
  return "event: " + name + "\ndata: " + data + "\n\n";
}
const std::string resp_head =
    R"({"created_at":1787580250,"id":"resp_123456","model":"llama3.2","object":"response",)";
const std::string resp_stream_head =
    event("response.created", R"({"response":)" + resp_head +
                                  R"("output":[],"status":"in_progress","usage":null},)"
                                  R"("sequence_number":0,"type":"response.created"})") +
    event("response.in_progress", R"({"response":)" + resp_head +
                                      R"("output":[],"status":"in_progress","usage":null},)"
                                      R"("sequence_number":1,"type":"response.in_progress"})") +
    event("response.output_item.added",
          R"({"item":{"content":[],"id":"msg_1","role":"assistant","status":"in_progress",)"
          R"("type":"message"},"output_index":0,"sequence_number":2,)"
          R"("type":"response.output_item.added"})") +
    event("response.output_text.delta",
          R"({"content_index":0,"delta":"Hello","item_id":"msg_1","output_index":0,)"
          R"("sequence_number":3,"type":"response.output_text.delta"})") +
    event("response.output_text.delta",
          R"({"content_index":0,"delta":" world","item_id":"msg_1","output_index":0,)"
          R"("sequence_number":4,"type":"response.output_text.delta"})");
const std::string resp_output =
    R"("output":[{"content":[{"annotations":[],"text":"Hello world","type":"output_text"}],)"
    R"("id":"msg_1","role":"assistant","status":"completed","type":"message"}],)";
const std::string resp_usage =
    R"("usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":0},)"
    R"("output_tokens":3,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":13})";
const std::string resp_stream_tail =
    event("response.output_text.done",
          R"({"content_index":0,"item_id":"msg_1","output_index":0,"sequence_number":5,)"
          R"("text":"Hello world","type":"response.output_text.done"})") +
    event("response.completed", R"({"response":{"completed_at":1787580251,)" + resp_head.substr(1) +
                                    resp_output + R"("status":"completed",)" + resp_usage +
                                    R"(},"sequence_number":6,"type":"response.completed"})");

const std::string ant_start = event(
    "message_start",
    R"({"type":"message_start","message":{"id":"msg_3c91e0b7a5d24f6e8b17c2a0","type":"message",)"
    R"("role":"assistant","model":"qwen3:8b","content":[],)"
    R"("usage":{"input_tokens":16,"output_tokens":0}}})");
const std::string ant_blocks =
    event("content_block_start", R"({"type":"content_block_start","index":0,)"
                                 R"("content_block":{"type":"thinking","thinking":""}})") +
    event("content_block_delta", R"({"type":"content_block_delta","index":0,)"
                                 R"("delta":{"type":"thinking_delta","thinking":"Hmm"}})") +
    event("content_block_stop", R"({"type":"content_block_stop","index":0})") +
    event("content_block_start",
          R"({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}})") +
    event("content_block_delta",
          R"({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hi"}})") +
    event("content_block_delta", R"({"type":"content_block_delta","index":1,)"
                                 R"("delta":{"type":"text_delta","text":" there"}})");
const std::string ant_end =
    event("content_block_stop", R"({"type":"content_block_stop","index":1})") +
    event("message_delta", R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},)"
                           R"("usage":{"input_tokens":27,"output_tokens":150}})") +
    event("message_stop", R"({"type":"message_stop"})");

const Opt n;  // an absent field

void add_native(std::vector<Scenario>& v) {
  v.push_back({"generate_stream",
               Route::api_generate,
               200,
               gen_line("The") + gen_line(" sky") + gen_line(" is") + gen_done,
               {46, 75, 14213406, 21418000, 519493000, 557637585, 3, true}});
  v.push_back({"generate_nonstream_no_trailing_newline",
               Route::api_generate,
               200,
               gen_done.substr(0, gen_done.size() - 1),
               {46, 75, 14213406, 21418000, 519493000, 557637585, 0, true}});
  v.push_back({"generate_raw_no_context",
               Route::api_generate,
               200,
               gen_line("x") + R"({"model":"llama3.2",)" + created +
                   R"(,"response":"","done":true,"done_reason":"length",)" + gen_metrics + "}\n",
               {46, 75, 14213406, 21418000, 519493000, 557637585, 1, true}});
  v.push_back({"chat_stream_thinking_tools",
               Route::api_chat,
               200,
               chat_stream,
               {208, 80, 1334875, 130000000, 4710000000, 4883583458, 3, true}});
  v.push_back(
      {"generate_load",
       Route::api_generate,
       200,
       R"({"model":"llama3.2",)" + created + R"(,"response":"","done":true,"done_reason":"load"})",
       {n, n, n, n, n, n, 0, true}});
  v.push_back({"generate_unload",
               Route::api_generate,
               200,
               R"({"model":"llama3.2",)" + created +
                   R"(,"response":"","done":true,"done_reason":"unload"})",
               {n, n, n, n, n, n, 0, true}});
  v.push_back({"chat_load",
               Route::api_chat,
               200,
               R"({"model":"qwen3:8b",)" + created +
                   R"(,"message":{"role":"assistant","content":""},"done":true,)"
                   R"("done_reason":"load"})",
               {n, n, n, n, n, n, 0, true}});
  v.push_back({"embed",
               Route::api_embed,
               200,
               R"({"model":"all-minilm","embeddings":[[0.104775704,-0.0109453,0.04],)"
               R"([0.1,-2.5e-05,0.3]],"total_duration":34551431,"load_duration":10432901,)"
               R"("prompt_eval_count":22})",
               {22, n, 10432901, n, n, 34551431, 0, true}});
  v.push_back({"embed_empty_input",
               Route::api_embed,
               200,
               R"({"model":"all-minilm","embeddings":[]})",
               {n, n, n, n, n, n, 0, true}});
  v.push_back({"embeddings_legacy",
               Route::api_embeddings,
               200,
               R"({"embedding":[0.2520108222961426,-0.5,1e-7]})",
               {n, n, n, n, n, n, 0, false}});
}

void add_native_errors(std::vector<Scenario>& v) {
  v.push_back({"native_error_mid_stream",
               Route::api_generate,
               200,
               gen_line("The") + gen_line(" sky") +
                   R"({"error":"an error was encountered while running the model: )"
                   R"(unexpected EOF"})"
                   "\n",
               {n, n, n, n, n, n, 2, false, true, true}});
  v.push_back({"native_error_before_output",
               Route::api_chat,
               500,
               R"({"error":"model runner has unexpectedly stopped, this may be due to )"
               R"(resource limitations or an internal error, check ollama server logs for )"
               R"(details"})",
               {n, n, n, n, n, n, 0, false, false, true}});
  v.push_back({"native_not_found",
               Route::api_generate,
               404,
               R"({"error":"model 'llama9' not found"})",
               {n, n, n, n, n, n, 0, false, false, true}});
  v.push_back({"native_truncated",
               Route::api_generate,
               200,
               gen_line("The") + gen_done.substr(0, gen_done.size() / 2),
               {n, n, n, n, n, n, 1, false, true}});
  v.push_back({"native_bad_line_then_done",
               Route::api_generate,
               200,
               gen_line("a") + "{\"model\":oops}\n" + gen_done,
               {46, 75, 14213406, 21418000, 519493000, 557637585, 1, true}});
}

void add_openai(std::vector<Scenario>& v) {
  v.push_back({"oa_chat_stream_no_usage",
               Route::v1_chat_completions,
               200,
               oa_chat_body + done_event,
               {n, n, n, n, n, n, 3, false, true}});
  v.push_back({"oa_chat_stream_usage",
               Route::v1_chat_completions,
               200,
               oa_chat_body + oa_usage_chunk + done_event,
               {32, 34, n, n, n, n, 3, true}});
  v.push_back({"oa_chat_stream_reasoning_tools",
               Route::v1_chat_completions,
               200,
               oa_delta(R"({"role":"assistant","content":"","reasoning":"Let me think"})") +
                   oa_delta(R"({"content":"","tool_calls":[{"id":"call_k7m2x9qa","index":0,)"
                            R"("type":"function","function":{"name":"get_weather",)"
                            R"("arguments":"{\"city\":\"Paris\"}"}}]})") +
                   oa_delta(R"({"content":""})") + oa_delta("{}", R"("tool_calls")") +
                   oa_usage_chunk + done_event,
               {32, 34, n, n, n, n, 2, true}});
  v.push_back({"oa_chat_error_mid_stream",
               Route::v1_chat_completions,
               200,
               oa_delta(R"({"role":"assistant","content":"The"})") +
                   oa_delta(R"({"role":"assistant","content":""})") +
                   oa_chunk(R"([{"index":0,"delta":{"content":""},"finish_reason":null}])", ""),
               {n, n, n, n, n, n, 1, false, true, true}});
  v.push_back({"oa_chat_error_before_output",
               Route::v1_chat_completions,
               500,
               R"({"error":{"message":"model runner has unexpectedly stopped","type":"api_error",)"
               R"("param":null,"code":null}})"
               "\n",
               {n, n, n, n, n, n, 0, false, false, true}});
  v.push_back({"oa_chat_nonstream",
               Route::v1_chat_completions,
               200,
               R"({"id":"chatcmpl-547","object":"chat.completion","created":1787580260,)"
               R"("model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"index":0,)"
               R"("message":{"role":"assistant","content":"Blue."},"finish_reason":"stop"}],)"
               R"("usage":{"prompt_tokens":41,"completion_tokens":14,"total_tokens":55}})"
               "\n",
               {41, 14, n, n, n, n, 0, true}});
  v.push_back({"oa_chat_truncated_after_usage",
               Route::v1_chat_completions,
               200,
               oa_chat_body + oa_usage_chunk.substr(0, oa_usage_chunk.size() - 1),
               {32, 34, n, n, n, n, 3, true}});
}

void add_openai_completions(std::vector<Scenario>& v) {
  v.push_back({"oa_completions_stream_usage",
               Route::v1_completions,
               200,
               cmpl_text("Hello", "null", zero_usage) + cmpl_text(" there", "null", zero_usage) +
                   cmpl_text("", R"("stop")", zero_usage) +
                   cmpl_chunk("[]", R"(,"usage":{"prompt_tokens":12,"completion_tokens":5,)"
                                    R"("total_tokens":17})") +
                   done_event,
               {12, 5, n, n, n, n, 2, true}});
  v.push_back({"oa_completions_stream_cut_before_usage",
               Route::v1_completions,
               200,
               cmpl_text("Hello", "null", zero_usage) + cmpl_text("", R"("stop")", zero_usage),
               {n, n, n, n, n, n, 1, false, true}});
  v.push_back({"oa_completions_error_mid_stream",
               Route::v1_completions,
               200,
               cmpl_text("Hello", "null", "") +
                   R"(data: {"id":"cmpl-42","object":"text_completion","created":1787580251,)"
                   R"("choices":[{"text":"","index":0,"finish_reason":null}],"model":"",)"
                   R"("system_fingerprint":"fp_ollama"})"
                   "\n\n",
               {n, n, n, n, n, n, 1, false, true, true}});
  v.push_back({"oa_completions_nonstream",
               Route::v1_completions,
               200,
               R"({"id":"cmpl-7","object":"text_completion","created":1787580260,)"
               R"("model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"text":"Hi",)"
               R"("index":0,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,)"
               R"("completion_tokens":2,"total_tokens":11}})"
               "\n",
               {9, 2, n, n, n, n, 0, true}});
  v.push_back({"oa_embeddings",
               Route::v1_embeddings,
               200,
               R"({"object":"list","data":[{"object":"embedding","embedding":[0.1,-0.2,0.3],)"
               R"("index":0}],"model":"all-minilm","usage":{"prompt_tokens":13,)"
               R"("total_tokens":13}})"
               "\n",
               {13, n, n, n, n, n, 0, true}});
}

void add_typed(std::vector<Scenario>& v) {
  v.push_back({"responses_stream",
               Route::v1_responses,
               200,
               resp_stream_head + resp_stream_tail,
               {10, 3, n, n, n, n, 2, true}});
  v.push_back({"responses_error_mid_stream",
               Route::v1_responses,
               200,
               resp_stream_head,
               {n, n, n, n, n, n, 2, false, true}});
  v.push_back({"responses_nonstream",
               Route::v1_responses,
               200,
               R"({"completed_at":1787580251,)" + resp_head.substr(1) + resp_output +
                   R"("status":"completed",)" + resp_usage + "}\n",
               {10, 3, n, n, n, n, 0, true}});
  v.push_back({"anthropic_stream",
               Route::v1_messages,
               200,
               ant_start + ant_blocks + ant_end,
               {27, 150, n, n, n, n, 3, true}});
  v.push_back({"anthropic_error_mid_stream",
               Route::v1_messages,
               200,
               ant_start + ant_blocks,
               {n, n, n, n, n, n, 3, false, true}});
  v.push_back({"anthropic_nonstream",
               Route::v1_messages,
               200,
               R"({"id":"msg_3c91e0b7a5d24f6e8b17c2a0","type":"message","role":"assistant",)"
               R"("model":"qwen3:8b","content":[{"type":"thinking","thinking":"Hmm"},)"
               R"({"type":"text","text":"Hi"}],"stop_reason":"end_turn",)"
               R"("usage":{"input_tokens":196,"output_tokens":80}})"
               "\n",
               {196, 80, n, n, n, n, 0, true}});
  v.push_back({"anthropic_error_before_output",
               Route::v1_messages,
               404,
               R"({"type":"error","error":{"type":"not_found_error","message":"model 'llama9' )"
               R"(not found"},"request_id":"req_3c91e0b7a5d24f6e8b17c2a0"})"
               "\n",
               {n, n, n, n, n, n, 0, false, false, true}});
  v.push_back({"anthropic_real_usage_split",
               Route::v1_messages,
               200,
               ant_start + ant_blocks +
                   event("message_delta", R"({"type":"message_delta","delta":{"stop_reason":)"
                                          R"("end_turn"},"usage":{"output_tokens":15}})"),
               {16, 15, n, n, n, n, 3, true}});
  v.push_back({"anthropic_error_event",
               Route::v1_messages,
               200,
               ant_start + event("error", R"({"type":"error","error":{"type":"overloaded_error",)"
                                          R"("message":"Overloaded"}})"),
               {n, n, n, n, n, n, 0, false, true, true}});
}

std::vector<Scenario> scenarios() {
  std::vector<Scenario> v;
  add_native(v);
  add_native_errors(v);
  add_openai(v);
  add_openai_completions(v);
  add_typed(v);
  v.push_back({"other_route", Route::other, 200, R"({"models":[]})", {}});
  return v;
}

TEST(TailScanner, EveryScenarioGivesTheSpecNumbers) {
  for (const Scenario& s : scenarios()) {
    EXPECT_EQ(describe(scan(s.route, s.status, {s.body})), describe(s.expect)) << s.name;
  }
}

TEST(TailScanner, EveryScenarioIsSplitInvariant) {
  for (const Scenario& s : scenarios()) {
    SCOPED_TRACE(s.name);
    expect_split_invariant(s);
  }
}

TEST(TailScanner, SseVariantsReadTheSame) {
  const std::string canonical = oa_chat_body + oa_usage_chunk + done_event;
  const Usage want = scan(Route::v1_chat_completions, 200, {canonical});
  ASSERT_TRUE(want.usage_found);
  const auto replace_all = [](std::string s, const std::string& from, const std::string& to) {
    for (std::size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) {
      s.replace(at, from.size(), to);
    }
    return s;
  };
  std::vector<std::string> variants = {
      replace_all(canonical, "\n", "\r\n"),
      replace_all(canonical, "\n", "\r"),
      replace_all(canonical, "data: ", "data:"),
      ": keep-alive\n\n" + replace_all(canonical, "\n\n", "\nid: 7\nretry: 10\n\n"),
      // The usage chunk's JSON split over three data lines (joined with '\n' per SSE).
      oa_chat_body +
          "data: {\"id\":\"x\",\"choices\":[],\n"
          "data: \"usage\":{\"prompt_tokens\":32,\n"
          "data:\"completion_tokens\":34}}\n\n" +
          done_event,
  };
  for (const std::string& v : variants) {
    Scenario s{"variant", Route::v1_chat_completions, 200, v, {}};
    EXPECT_EQ(describe(scan(s.route, s.status, {v})), describe(want)) << v;
    expect_split_invariant(s);
  }
}

TEST(TailScanner, OutputTimestampsComeFromTheCompletingFeed) {
  TailScanner t;
  t.init(Route::api_generate, 200, &parser());
  const std::string first = gen_line("The");
  t.feed(first.data(), first.size() - 5, 100);  // not yet whole
  t.feed(first.data() + first.size() - 5, 5, 150);
  const std::string second = gen_line(" sky");
  t.feed(second.data(), second.size(), 200);
  t.feed(gen_done.data(), gen_done.size(), 300);
  const Usage& u = t.finish();
  EXPECT_EQ(u.output_events, 2u);
  EXPECT_EQ(u.first_output_ns, 150u);
  EXPECT_EQ(u.last_output_ns, 200u);
  EXPECT_EQ(u.get(UsageField::completion_tokens), 75u);

  TailScanner a;
  a.init(Route::v1_messages, 200, &parser());
  const std::string events = ant_start + ant_blocks;
  std::uint64_t now = 1000;
  for (std::size_t at = 0; at < events.size(); at += 50) {
    const std::size_t n = std::min<std::size_t>(50, events.size() - at);
    a.feed(events.data() + at, n, now += 10);
  }
  const Usage& au = a.finish();
  EXPECT_EQ(au.output_events, 3u);
  EXPECT_GT(au.last_output_ns, au.first_output_ns);
  EXPECT_TRUE(au.usage_missing);
}

TEST(TailScanner, HugeContextLineIsSkippedAndMetered) {
  std::string big = R"({"model":"llama3.2",)" + created +
                    R"(,"response":"","done":true,"done_reason":"stop","context":[)";
  while (big.size() < (std::size_t{1} << 20)) big += "128000,128006,9125,";
  big += "1]," + gen_metrics + "}\n";
  const Usage u = scan(Route::api_generate, 200, {gen_line("x"), big});
  EXPECT_EQ(u.get(UsageField::prompt_tokens), 46u);
  EXPECT_EQ(u.get(UsageField::eval_ns), 519493000u);
  EXPECT_TRUE(u.usage_found);
  // The same line in 4 KiB pieces.
  std::vector<std::string> pieces{gen_line("x")};
  for (std::size_t at = 0; at < big.size(); at += 4096) pieces.push_back(big.substr(at, 4096));
  EXPECT_EQ(describe(scan(Route::api_generate, 200, pieces)), describe(u));
}

TEST(TailScanner, LastUsageWinsAndReplacesEarlierCounts) {
  const std::string body =
      oa_chat_body + oa_usage_chunk +
      oa_chunk("[]").insert(oa_chunk("[]").size() - 3, R"(,"usage":{"completion_tokens":40})");
  const Usage u = scan(Route::v1_chat_completions, 200, {body});
  EXPECT_FALSE(u.get(UsageField::prompt_tokens).has_value());
  EXPECT_EQ(u.get(UsageField::completion_tokens), 40u);
}

TEST(TailScanner, UnusableUsageIsMissing) {
  // A usage object without integers, and one that is not valid JSON inside.
  for (const char* usage : {R"({"prompt_tokens":"x"})", R"({"prompt_tokens":1,,})"}) {
    const std::string body =
        oa_chat_body +
        oa_chunk("[]").insert(oa_chunk("[]").size() - 3, std::string(",\"usage\":") + usage);
    const Usage u = scan(Route::v1_chat_completions, 200, {body});
    EXPECT_FALSE(u.usage_found) << usage;
    EXPECT_TRUE(u.usage_missing) << usage;
  }
}

TEST(JsonUint, AcceptsOnlyPlainUnsignedIntegers) {
  EXPECT_EQ(json_uint("0"), 0u);
  EXPECT_EQ(json_uint("18446744073709551615"), 18446744073709551615ull);
  for (const char* bad : {"", "-1", "01", "1.0", "1e3", "18446744073709551616", " 1", "x"}) {
    EXPECT_FALSE(json_uint(bad).has_value()) << bad;
  }
}

TEST(PieceParser, ReadsCountsFromAnObject) {
  PieceParser parser;
  constexpr std::array<std::string_view, 3> keys{"prompt_tokens", "completion_tokens", "x"};
  PieceParser::Counts counts;
  ASSERT_TRUE(parser.read_counts(
      R"({"prompt_tokens":32,"completion_tokens":34,"total_tokens":66,"d":{"x":1}})", keys,
      &counts));
  EXPECT_EQ(counts.present, 0b011);
  EXPECT_EQ(counts.value[0], 32u);
  EXPECT_EQ(counts.value[1], 34u);
  ASSERT_TRUE(
      parser.read_counts(R"({"prompt_tokens":-1,"x":"7","completion_tokens":1.5})", keys, &counts));
  EXPECT_EQ(counts.present, 0);
  ASSERT_TRUE(parser.read_counts(R"({"x":1,"x":2})", keys, &counts));
  EXPECT_EQ(counts.present, 0b100);
  EXPECT_EQ(counts.value[2], 2u);
  EXPECT_FALSE(parser.read_counts(R"({"prompt_tokens":1)", keys, &counts));
  EXPECT_FALSE(parser.read_counts("[1]", keys, &counts));
  EXPECT_FALSE(parser.read_counts(std::string(piece_bytes_max + 1, ' '), keys, &counts));
}

TEST(SseLexer, ClassifiesRuns) {
  SseLexer lx;
  const std::string text = "event: a\r\ndata:x\n: c\nid\n\r\n";
  std::string log;
  for (std::size_t at = 0; at < text.size();) {
    SseLexer::Run run;
    const std::size_t n = lx.next(text.data() + at, text.size() - at, &run);
    log += std::to_string(static_cast<int>(run)) + ":" + std::to_string(n) + " ";
    at += n;
  }
  // event(framing 5) ':'(value_start) ' '(framing) 'a'(name) CR(line_end) LF(tail)
  // data(framing 4) ':' 'x'(data) LF(line_end) ": c"(framing) LF(framing) "id"(framing)
  // LF(framing) CR(event_end) LF(tail)
  EXPECT_EQ(log, "0:5 1:1 0:1 3:1 4:1 6:1 0:4 1:1 2:1 4:1 0:3 0:1 0:2 0:1 5:1 6:1 ");
}

}  // namespace
}  // namespace tokentap
