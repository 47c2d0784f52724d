/* run_loop.c - running a unit test's libuv loop (see run_loop.h). */
#include "run_loop.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void on_guard(uv_timer_t *t)
{
    struct run_loop_guard *guard = t->data;
    guard->expired = 1;
}

/* run_loop_guard_start - see run_loop.h. */
void run_loop_guard_start(struct run_loop_guard *guard, uv_loop_t *loop, uint64_t ms)
{
    guard->expired = 0;
    uv_timer_init(loop, &guard->timer);
    guard->timer.data = guard;
    uv_timer_start(&guard->timer, on_guard, ms, 0);
}

/* run_loop_guard_close - see run_loop.h. */
void run_loop_guard_close(struct run_loop_guard *guard)
{
    uv_close((uv_handle_t *)&guard->timer, NULL);
}

/* run_loop_until - see run_loop.h. */
int run_loop_until(uv_loop_t *loop, run_loop_cond_fn cond, const void *arg, uint64_t ms)
{
    struct run_loop_guard guard;
    run_loop_guard_start(&guard, loop, ms);
    while ((cond == NULL || !cond(arg)) && !guard.expired)
        uv_run(loop, UV_RUN_ONCE);
    run_loop_guard_close(&guard);
    uv_run(loop, UV_RUN_NOWAIT); /* the guard's close callback */
    return cond != NULL && cond(arg);
}

/* run_loop_for - see run_loop.h. */
void run_loop_for(uv_loop_t *loop, uint64_t ms)
{
    run_loop_until(loop, NULL, NULL, ms);
}

/* count_handle - uv_walk callback: count every handle still on the loop. */
static void count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(unsigned *)arg)++;
}

/* run_loop_finish - see run_loop.h. */
void run_loop_finish(uv_loop_t *loop)
{
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    unsigned handles = 0;
    uv_walk(loop, count_handle, &handles);
    assert_int_equal(handles, 0);
    assert_int_equal(uv_loop_close(loop), 0);
}
