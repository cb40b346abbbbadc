// SendQueue: byte-exact gather, consume and the in-place body edit used by include_usage
// injection, over real BufRing buffers (a registered provided-buffer ring).
#include "tokentap/loop/send_queue.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "tokentap/loop/ring.h"

namespace tokentap {
namespace {

class SendQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    if (!ring_.init(64, 256, &error) || !bufs_.init(ring_.raw(), 8, 64, &error)) {
      GTEST_SKIP() << "io_uring unavailable: " << error;
    }
    pool_.init(256);
  }
  // Queues `text` split into pieces of `piece` bytes, each in its own spare buffer.
  void push_text(SendQueue& q, const std::string& text, std::size_t piece) {
    for (std::size_t at = 0; at < text.size(); at += piece) {
      const std::size_t n = std::min(piece, text.size() - at);
      const int b = bufs_.alloc_spare(true);
      ASSERT_GE(b, 0);
      const auto id = static_cast<std::uint16_t>(b);
      std::memcpy(bufs_.data(id) + 3, text.data() + at, n);  // nonzero offsets on purpose
      ASSERT_TRUE(q.push(pool_, bufs_, id, 3, static_cast<std::uint32_t>(n)));
      bufs_.unref(id);
    }
  }
  std::string contents(SendQueue& q) {
    iovec iov[256];
    const std::uint32_t n = q.gather(pool_, bufs_, iov, 256);
    std::string out;
    for (std::uint32_t i = 0; i < n; ++i) out.append(static_cast<char*>(iov[i].iov_base), iov[i].iov_len);
    return out;
  }
  std::uint16_t text_buffer(const std::string& text) {
    const auto id = static_cast<std::uint16_t>(bufs_.alloc_spare(true));
    std::memcpy(bufs_.data(id), text.data(), text.size());
    return id;
  }
  Ring ring_;
  BufRing bufs_;
  SegmentPool pool_;
};

TEST_F(SendQueueTest, GatherAndPartialConsume) {
  SendQueue q;
  push_text(q, "hello world, this is a queue", 5);
  EXPECT_EQ(q.bytes(), 28u);
  q.consume(pool_, bufs_, 7);
  EXPECT_EQ(contents(q), "orld, this is a queue");
  q.consume(pool_, bufs_, q.bytes());
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(pool_.free_count(), 256u) << "every segment returned";
}

TEST_F(SendQueueTest, PushFrontPutsTheHeadFirst) {
  SendQueue q;
  push_text(q, "{\"a\":1}", 3);
  const auto head = text_buffer("HEAD\r\n\r\n");
  ASSERT_TRUE(q.push_front(pool_, bufs_, head, 0, 8));
  bufs_.unref(head);
  EXPECT_EQ(contents(q), "HEAD\r\n\r\n{\"a\":1}");
  q.clear(pool_, bufs_);
}

TEST_F(SendQueueTest, EditMatchesAStringSpliceAtEveryPositionAndPieceSize) {
  const std::string body = R"({"model":"llama3.2","stream":true,"stream_options":{"x":false}})";
  const std::string insert = R"("include_usage":true,)";
  std::mt19937 rng(7);
  for (std::size_t piece = 1; piece <= body.size(); piece += 3) {
    for (std::size_t at = 0; at <= body.size(); ++at) {
      const std::size_t remove = std::uniform_int_distribution<std::size_t>(
          0, std::min<std::size_t>(5, body.size() - at))(rng);
      SendQueue q;
      push_text(q, body, piece);
      const auto text = text_buffer(insert);
      ASSERT_TRUE(q.edit(pool_, bufs_, at, remove, text, 0,
                         static_cast<std::uint32_t>(insert.size())));
      bufs_.unref(text);
      std::string want = body;
      want.replace(at, remove, insert);
      ASSERT_EQ(contents(q), want) << "piece " << piece << " at " << at << " remove " << remove;
      ASSERT_EQ(q.bytes(), want.size());
      q.clear(pool_, bufs_);
      ASSERT_EQ(pool_.free_count(), 256u);
    }
  }
}

TEST_F(SendQueueTest, EditOutsideTheQueueIsRefused) {
  SendQueue q;
  push_text(q, "abc", 2);
  const auto text = text_buffer("x");
  EXPECT_FALSE(q.edit(pool_, bufs_, 2, 5, text, 0, 1));
  bufs_.unref(text);
  EXPECT_EQ(contents(q), "abc");
  q.clear(pool_, bufs_);
}

TEST_F(SendQueueTest, AdjacentSlicesOfOneBufferBecomeOneSegment) {
  SendQueue q;
  const std::uint16_t id = text_buffer("HEADbody-more");
  const std::uint32_t free_before = pool_.free_count();
  ASSERT_TRUE(q.push(pool_, bufs_, id, 0, 4));  // a head forwarded in place
  ASSERT_TRUE(q.push(pool_, bufs_, id, 4, 4));  // the body bytes right after it
  EXPECT_EQ(pool_.free_count(), free_before - 1) << "one segment, one iovec";
  iovec iov[4];
  EXPECT_EQ(q.gather(pool_, bufs_, iov, 4), 1u);
  // A send of the first gather is in flight while more bytes join the tail.
  ASSERT_TRUE(q.push(pool_, bufs_, id, 8, 5));
  q.consume(pool_, bufs_, 6);  // the in-flight send took 6 of the 8 it was given
  EXPECT_EQ(contents(q), "dy-more");
  // Not adjacent: a gap, or another buffer, is a segment of its own.
  ASSERT_TRUE(q.push(pool_, bufs_, id, 0, 2));
  EXPECT_EQ(q.gather(pool_, bufs_, iov, 4), 2u);
  EXPECT_EQ(contents(q), "dy-moreHE");
  bufs_.unref(id);
  q.clear(pool_, bufs_);
  EXPECT_EQ(pool_.free_count(), free_before);
}

TEST_F(SendQueueTest, CopyFromCopiesEveryByteIntoBuffersOfItsOwn) {
  SendQueue src;
  std::string text;
  for (int i = 0; i < 3000; ++i) text += static_cast<char>('a' + i % 26);
  push_text(src, text, 700);
  SendQueue copy;
  ASSERT_TRUE(copy.copy_from(pool_, bufs_, src));
  src.clear(pool_, bufs_);  // the source's buffers may go: the copy does not share them
  EXPECT_EQ(contents(copy), text);
  EXPECT_EQ(copy.bytes(), text.size());
  SendQueue empty;
  SendQueue none;
  ASSERT_TRUE(none.copy_from(pool_, bufs_, empty));
  EXPECT_TRUE(none.empty());
  copy.clear(pool_, bufs_);
}

}  // namespace
}  // namespace tokentap
