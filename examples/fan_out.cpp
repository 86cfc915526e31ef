// Runs 100 commands concurrently, at most 16 at a time, each with its own deadline
// (`Command::deadline`), and gathers the results in the order of the commands: what an
// agent framework does with a batch of parallel tool calls. A few commands exit non-zero
// and one outlives its deadline; the program prints a summary and checks the counts
// (exit 0 when they are as expected, 1 otherwise).
//
//   fan_out [ADDRESS]
//
// Without ADDRESS, a private local agent is started for the run (as `sandbox-run` does).

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/channel.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <chrono>
#include <cstddef>
#include <exception>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "example_agent.hpp"
#include "sandbox/sandbox.hpp"

namespace {

using namespace std::chrono_literals;

constexpr std::size_t command_count = 100;
// Well below the agent's --max-concurrent (64 by default), past which it refuses new execs
// with resource_exhausted instead of queueing them.
constexpr std::size_t max_in_flight = 16;

/// What one command came to: an error, or an exit code.
struct Outcome {
  std::error_code error;
  int exit_code = -1;
  std::string error_message;
};

/// State the workers share. Every worker runs on the one thread that runs the io_context,
/// so none of this needs a lock.
struct Batch {
  const std::vector<sandbox::Command>& commands;
  std::vector<Outcome> outcomes;
  std::size_t next = 0;
  std::size_t in_flight = 0;
  std::size_t peak_in_flight = 0;
};

/// Takes the next command not yet started until none is left: `max_in_flight` workers make
/// the concurrency bound, with no semaphore to get wrong.
asio::awaitable<void> worker(sandbox::RemoteRunner& runner, Batch& batch) {
  while (batch.next < batch.commands.size()) {
    const std::size_t index = batch.next++;
    batch.peak_in_flight = std::max(batch.peak_in_flight, ++batch.in_flight);
    // as_tuple: a failed call is a value to record, not an exception that ends the worker.
    auto [ec, result] = co_await runner.exec(batch.commands[index],
                                             asio::experimental::as_tuple(asio::use_awaitable));
    --batch.in_flight;
    batch.outcomes[index] = {ec, result.exit_code(), std::move(result.error_message)};
  }
}

/// Runs every command, at most `max_in_flight` at once; the outcomes are in command order.
asio::awaitable<Batch> run_all(sandbox::RemoteRunner& runner,
                               const std::vector<sandbox::Command>& commands) {
  auto executor = co_await asio::this_coro::executor;
  Batch batch{commands, std::vector<Outcome>(commands.size())};
  const std::size_t workers = std::min(max_in_flight, commands.size());

  // Each worker reports its end (its number) here. Room for all of them, so a report never
  // waits. (Asio 1.22's channel cannot carry a bare void(error_code).)
  asio::experimental::channel<void(std::error_code, std::size_t)> finished(executor, workers);
  std::exception_ptr failure;
  for (std::size_t w = 0; w < workers; ++w) {
    asio::co_spawn(executor, worker(runner, batch), [&, w](std::exception_ptr error) {
      if (error && !failure) failure = error;
      finished.try_send(std::error_code{}, w);
    });
  }
  // The workers hold references into this frame: wait for every one before leaving it.
  for (std::size_t w = 0; w < workers; ++w) {
    co_await finished.async_receive(asio::use_awaitable);
  }
  if (failure) std::rethrow_exception(failure);
  co_return batch;
}

std::vector<sandbox::Command> make_commands() {
  std::vector<sandbox::Command> commands;
  for (std::size_t i = 0; i < command_count; ++i) {
    const std::string n = std::to_string(i);
    sandbox::Command command;
    if (i == 50) {
      // Outlives its deadline: the SDK cancels the call and asks the agent to kill it.
      command = {"sleep", "60"};
      command.deadline = 1s;
    } else if (i % 25 == 7) {
      command = {"sh", "-c", "echo task " + n + " failed >&2; exit 3"};
      command.deadline = 30s;
    } else {
      command = {"sh", "-c", "echo task " + n};
      command.deadline = 30s;
    }
    commands.push_back(std::move(command));
  }
  return commands;
}

asio::awaitable<int> fan_out(sandbox::RemoteRunner& runner) {
  const auto commands = make_commands();
  const auto start = std::chrono::steady_clock::now();
  const Batch batch = co_await run_all(runner, commands);
  const auto total = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);

  std::size_t ok = 0, non_zero = 0, deadline_exceeded = 0, other = 0;
  for (std::size_t i = 0; i < batch.outcomes.size(); ++i) {
    const Outcome& outcome = batch.outcomes[i];
    if (outcome.error == sandbox::errc::deadline_exceeded) {
      ++deadline_exceeded;
      std::cout << "command " << i << ": deadline_exceeded: " << outcome.error_message << "\n";
    } else if (outcome.error) {
      ++other;
      std::cout << "command " << i << ": " << sandbox::error_name(outcome.error) << ": "
                << outcome.error_message << "\n";
    } else if (outcome.exit_code != 0) {
      ++non_zero;
      std::cout << "command " << i << ": exit code " << outcome.exit_code << "\n";
    } else {
      ++ok;
    }
  }

  std::cout << "\n"
            << std::left << std::setw(22) << "outcome"
            << "count\n"
            << std::setw(22) << "ok (exit 0)" << ok << "\n"
            << std::setw(22) << "non-zero exit" << non_zero << "\n"
            << std::setw(22) << "deadline_exceeded" << deadline_exceeded << "\n"
            << std::setw(22) << "other error" << other << "\n"
            << std::setw(22) << "total time" << total.count() << " ms for " << batch.outcomes.size()
            << " commands, at most " << batch.peak_in_flight << " at once\n";

  const bool as_expected = ok == 95 && non_zero == 4 && deadline_exceeded == 1 && other == 0 &&
                           batch.peak_in_flight <= max_in_flight;
  co_return as_expected ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    sandbox::RemoteRunnerConfig config;
    auto agent = example::use_agent(argc > 1 ? argv[1] : nullptr, config);
    asio::io_context io;
    sandbox::RemoteRunner runner(io.get_executor(), config);
    return example::run_to_end(io, fan_out(runner));
  } catch (const std::exception& e) {
    return example::report("fan_out", e);
  }
}
