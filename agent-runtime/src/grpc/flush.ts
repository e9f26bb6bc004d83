/**
 * When a Session stream's queued messages (a caller's tasks, a callee's
 * results) are written. Timestamps per task on a 100-task coordination job
 * showed each hop waiting for the end of its event-loop turn
 * (setImmediate) before writing, once on the way out and once on the way
 * back, while nothing else was going to join the batch.
 *
 * - A stream with nothing written this turn writes as soon as the code that
 *   queued the message is done: the synchronous code and the promise
 *   continuations of the event being handled (process.nextTick callbacks
 *   queued from them run after them). Tasks a fan-out starts together, or
 *   results handed over by one read, still go out as one message.
 * - Anything queued on the stream later in the same turn (other sockets'
 *   answers read in the same poll phase) waits for the end of the turn
 *   (setImmediate) and goes out as one message; while every turn brings
 *   more, the stream keeps writing once per turn, so a busy stream sends no
 *   more messages than it did when every batch waited for the turn's end.
 *
 * Hand-written because it is a policy over Node's event-loop phases, not a
 * data structure a library offers; grpc-js and HTTP/2 below frame and send
 * what is written.
 */
export class FlushScheduler {
  /** a flush is due (the next tick or the turn's end will call it) */
  private due = false;
  /** the stream wrote this turn: what comes now waits for the turn's end */
  private holding = false;

  constructor(private readonly flush: () => void) {}

  /** Something was queued: have it written (see the class comment for when). */
  request(): void {
    if (this.due) return;
    this.due = true;
    if (!this.holding) process.nextTick(this.writeNow);
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
