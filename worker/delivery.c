#include "delivery.h"

#include "otp_time.h"

void delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    delivery_tracker_t *t = msg->_private;
    (void)rk;
    (void)opaque;
    if (!t)
        return;
    t->pending--;
    if (msg->err) {
        t->failed++;
        t->last_err = msg->err;
    }
}

int delivery_wait(rd_kafka_t *producer, delivery_tracker_t *t, int timeout_ms)
{
    int64_t deadline = otp_monotonic_ms() + timeout_ms;

    while (t->pending > 0 && otp_monotonic_ms() < deadline)
        rd_kafka_poll(producer, 50);
    return t->pending == 0 && t->failed == 0 ? 0 : -1;
}
