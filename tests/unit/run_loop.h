/* run_loop.h - running a unit test's libuv loop: until a condition holds or a time has
 * passed, and to its end once the test closed its handles.
 *
 * For the tests whose code under test runs on a loop (test_delivery, test_http_client,
 * test_rcpt_check). Failures are cmocka assertions. */
#ifndef SMTPHOOK_TEST_RUN_LOOP_H
#define SMTPHOOK_TEST_RUN_LOOP_H

#include <stdint.h>
#include <uv.h>

/* A timer that marks when a time has passed; while it runs the loop never blocks for good. */
struct run_loop_guard {
    uv_timer_t timer; /* fires once, after ms */
    int expired;      /* set when it fired */
};

/* run_loop_cond_fn - a condition the loop is run until; arg is the caller's. */
typedef int (*run_loop_cond_fn)(const void *arg);

/* run_loop_guard_start - start guard on loop: guard->expired is set after ms of loop time. */
void run_loop_guard_start(struct run_loop_guard *guard, uv_loop_t *loop, uint64_t ms);

/* run_loop_guard_close - close the guard's timer; its close callback runs at the loop's next
 * turn (the caller runs it). */
void run_loop_guard_close(struct run_loop_guard *guard);

/* run_loop_until - run loop until cond(arg) holds or ms of loop time pass (a guard timer
 * wakes the loop); returns cond(arg). */
int run_loop_until(uv_loop_t *loop, run_loop_cond_fn cond, const void *arg, uint64_t ms);

/* run_loop_for - run loop for ms of loop time, whatever happens. */
void run_loop_for(uv_loop_t *loop, uint64_t ms);

/* run_loop_finish - run loop until every handle is closed (the test has closed or is closing
 * them all), check that none is left, close the loop. */
void run_loop_finish(uv_loop_t *loop);

#endif
