/**
 * When a Session stream's queued messages (a caller's tasks, a callee's
 * results) are written. Timestamps per task on a 100-task coordination job
 * showed each hop waiting for the end of its event-loop turn
 * (setImmediate) before writing, also when nothing else was going to join
 * the batch.
 *
 * - A message that nothing else can join is written as soon as the code
 *   that queued it is done: the synchronous code and the promise
 *   continuations of the event being handled (process.nextTick callbacks
 *   queued from them run after them). Tasks a fan-out starts together, or
 *   results handed over by one read, still go out as one message.
 * - A message that others may join this turn (`request(true)`: a callee
 *   with other tasks of the stream still running, whose answers may be read
 *   in the same poll phase), and anything queued after the stream wrote in
 *   this turn, waits for the end of the turn (setImmediate) and goes out as
 *   one message; while every turn brings more, the stream keeps writing
 *   once per turn, as it did when every batch waited for the turn's end.
 *
 * Hand-written because it is a policy over Node's event-loop phases, not a
 * data structure a library offers; grpc-js and HTTP/2 below frame and send
 * what is written.
 */
export class FlushScheduler {
  /** a flush is due (the next tick or the turn's end will call it) */
  private due = false;
  /** the turn's end will flush: what comes now waits for it */
  private holding = false;

  constructor(private readonly flush: () => void) {}

  /**
   * Something was queued: have it written (see the class comment for when).
   * @param othersMayJoin more messages may be queued on this stream in this turn
   */
  request(othersMayJoin = false): void {
    if (this.due) return;
    this.due = true;
    if (this.holding) return;
    if (othersMayJoin) {
      this.holding = true;
      setImmediate(this.turnEnded);
    } else {
      process.nextTick(this.writeNow);
    }
  }

  private readonly writeNow = (): void => {
    if (!this.due || this.holding) return;
    this.due = false;
    this.holding = true;
    setImmediate(this.turnEnded);
    this.flush();
  };

  private readonly turnEnded = (): void => {
    if (!this.due) {
      this.holding = false;
      return;
    }
    this.due = false;
    setImmediate(this.turnEnded); // still busy: keep collecting per turn
    this.flush();
  };
}
