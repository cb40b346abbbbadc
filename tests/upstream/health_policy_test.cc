// HealthPolicy and the retry decision: every rule of issue 16 as pure functions.
#include "tokentap/upstream/health_policy.h"

#include <gtest/gtest.h>

namespace tokentap {
namespace {

constexpr HealthPolicy policy{};

// Runs a sequence of check results ('+' pass, '-' fail) from `start`, returning the changes.
std::string run_checks(HealthCounts& c, std::string_view results) {
  std::string changes;
  for (const char r : results) {
    const CheckVerdict v = policy.on_check(c, r == '+');
    c = v.next;
    changes += v.change == HealthChange::went_down ? 'D' : v.change == HealthChange::went_up ? 'U'
                                                                                        : '.';
  }
  return changes;
}

TEST(HealthPolicy, DownAfterThreeConsecutiveFailedChecks) {
  HealthCounts c{};
  EXPECT_EQ(run_checks(c, "--"), "..");
  EXPECT_TRUE(c.up);
  EXPECT_EQ(run_checks(c, "-"), "D");
  EXPECT_FALSE(c.up);
  EXPECT_EQ(run_checks(c, "----"), "....");  // already down: no second event
}

TEST(HealthPolicy, APassBreaksTheRunOfFailures) {
  HealthCounts c{};
  EXPECT_EQ(run_checks(c, "--+--+--+"), ".........");
  EXPECT_TRUE(c.up);
}

TEST(HealthPolicy, UpAfterTwoConsecutivePasses) {
  HealthCounts c{.up = false, .fails = health_fails_down, .passes = 0};
  EXPECT_EQ(run_checks(c, "+-+-+-"), "......");
  EXPECT_FALSE(c.up);
  EXPECT_EQ(run_checks(c, "++"), ".U");
  EXPECT_TRUE(c.up);
  EXPECT_EQ(run_checks(c, "+++"), "...");
}

TEST(HealthPolicy, CountersSaturateAtTheirThresholds) {
  HealthCounts c{};
  run_checks(c, std::string(1000, '-'));
  EXPECT_EQ(c.fails, health_fails_down);
  run_checks(c, std::string(1000, '+'));
  EXPECT_EQ(c.passes, health_passes_up);
  EXPECT_EQ(c.fails, 0u);
}

TEST(HealthPolicy, RefusedOrTimedOutConnectIsDownAtOnce) {
  EXPECT_EQ(policy.on_connect_failure(true, ConnectFailure::refused, 1), HealthChange::went_down);
  EXPECT_EQ(policy.on_connect_failure(true, ConnectFailure::timeout, 7), HealthChange::went_down);
  EXPECT_EQ(policy.on_connect_failure(true, ConnectFailure::other, 7), HealthChange::none);
  EXPECT_EQ(policy.on_connect_failure(false, ConnectFailure::refused, 7), HealthChange::none);
  EXPECT_EQ(reason_of(ConnectFailure::refused), HealthReason::connect_refused);
  EXPECT_EQ(reason_of(ConnectFailure::timeout), HealthReason::connect_timeout);
}

TEST(HealthPolicy, TheLastHealthyBackendIsNeverTakenOutByPassiveSignals) {
  EXPECT_EQ(policy.on_connect_failure(true, ConnectFailure::refused, 0), HealthChange::none);
  EXPECT_FALSE(policy.on_response(errors_5xx_eject + 100, 500, false, 0).eject);
  EXPECT_FALSE(policy.may_leave(0));
  EXPECT_TRUE(policy.may_leave(1));
}

// Feeds statuses ('5' = 500, 'b' = busy 503, 'o' = 200, 'n' = 404) and returns where it ejected.
std::string run_answers(std::string_view answers, std::uint32_t healthy_others = 3) {
  std::uint32_t run = 0;
  std::string out;
  for (const char a : answers) {
    const int status = a == '5' ? 500 : a == 'b' ? 503 : a == 'n' ? 404 : 200;
    const ResponseVerdict v = policy.on_response(run, status, a == 'b', healthy_others);
    run = v.eject ? 0 : v.consecutive_5xx;  // the Fleet resets the run when it ejects
    out += v.eject ? 'E' : '.';
  }
  return out;
}

TEST(HealthPolicy, FiveConsecutive5xxEject) {
  EXPECT_EQ(run_answers("55555"), "....E");
  EXPECT_EQ(run_answers("5555o5555n5555"), "..............");
  EXPECT_EQ(run_answers("5555555555"), "....E....E");
  EXPECT_EQ(policy.on_response(4, 599, false, 1).consecutive_5xx, 5u);
  EXPECT_EQ(policy.on_response(4, 502, false, 1).eject, true);
}

TEST(HealthPolicy, Busy503NeitherCountsNorResetsTheRun) {
  EXPECT_EQ(run_answers(std::string(100, 'b')), std::string(100, '.'));
  EXPECT_EQ(run_answers("5555bbbb5"), "........E");
  EXPECT_EQ(policy.on_response(3, 503, true, 1).consecutive_5xx, 3u);
  EXPECT_EQ(policy.on_response(3, 503, false, 1).consecutive_5xx, 4u);  // a plain 503 counts
  EXPECT_FALSE(policy.counts_as_error(503, true));
  EXPECT_FALSE(policy.resets_run(503, true));
}

TEST(HealthPolicy, EjectionLastsThirtySecondsTimesItsCountCapped) {
  EXPECT_EQ(policy.ejection_duration_ms(1), 30'000u);
  EXPECT_EQ(policy.ejection_duration_ms(2), 60'000u);
  EXPECT_EQ(policy.ejection_duration_ms(3), 90'000u);
  EXPECT_EQ(policy.ejection_duration_ms(10), ejection_ms_max);
  EXPECT_EQ(policy.ejection_duration_ms(11), ejection_ms_max);
  EXPECT_EQ(policy.ejection_duration_ms(0xFFFF'FFFFu), ejection_ms_max);
  EXPECT_EQ(policy.ejection_duration_ms(0), 30'000u);
}

TEST(HealthPolicy, ReasonLabels) {
  EXPECT_EQ(health_reason_name(HealthReason::check), "health_check");
  EXPECT_EQ(health_reason_name(HealthReason::connect_refused), "connect_refused");
  EXPECT_EQ(health_reason_name(HealthReason::connect_timeout), "connect_timeout");
  EXPECT_EQ(health_reason_name(HealthReason::errors_5xx), "5xx");
  EXPECT_EQ(failover_reason_name(FailoverReason::connect), "connect");
  EXPECT_EQ(failover_reason_name(FailoverReason::reset), "reset");
  EXPECT_EQ(failover_reason_name(FailoverReason::busy), "busy");
}

TEST(Retry, ReasonOfEachWayAnAttemptEnds) {
  EXPECT_EQ(retry_reason_of(AttemptEnd::connect_failed, false), FailoverReason::connect);
  EXPECT_EQ(retry_reason_of(AttemptEnd::lost_before_head, false), FailoverReason::reset);
  EXPECT_EQ(retry_reason_of(AttemptEnd::answered, true), FailoverReason::busy);
  EXPECT_EQ(retry_reason_of(AttemptEnd::answered, false), FailoverReason::none);
}

TEST(Retry, OnlyBeforeTheFirstResponseByteWhileReplayableUpToRetries) {
  EXPECT_TRUE(may_retry(1, 2, true, false));
  EXPECT_TRUE(may_retry(2, 2, true, false));
  EXPECT_FALSE(may_retry(3, 2, true, false));  // 1 attempt + 2 retries spent
  EXPECT_FALSE(may_retry(1, 0, true, false));  // --retries 0
  EXPECT_FALSE(may_retry(1, 2, false, false));  // body no longer held
  EXPECT_FALSE(may_retry(1, 2, true, true));    // the client saw a byte
  EXPECT_FALSE(may_retry(0, 2, true, false));   // no attempt yet: nothing to retry
}

TEST(Retry, DecisionCombinesReasonAndPermission) {
  EXPECT_EQ(retry_decision(AttemptEnd::answered, true, 1, 2, true, false), FailoverReason::busy);
  EXPECT_EQ(retry_decision(AttemptEnd::answered, false, 1, 2, true, false), FailoverReason::none);
  EXPECT_EQ(retry_decision(AttemptEnd::lost_before_head, false, 1, 2, true, true),
            FailoverReason::none);
  EXPECT_EQ(retry_decision(AttemptEnd::connect_failed, false, 3, 2, true, false),
            FailoverReason::none);
  EXPECT_EQ(retry_decision(AttemptEnd::connect_failed, false, 2, 2, true, false),
            FailoverReason::connect);
}

TEST(Retry, OllamaBusyAnswerIsRecognised) {
  const std::string body = std::string(R"({"error":")") + std::string(ollama_busy_message) + "\"}";
  EXPECT_TRUE(is_busy_answer(503, body));
  EXPECT_FALSE(is_busy_answer(500, body));
  EXPECT_FALSE(is_busy_answer(503, R"({"error":"model is loading"})"));
  EXPECT_FALSE(is_busy_answer(503, ""));
}

}  // namespace
}  // namespace tokentap
