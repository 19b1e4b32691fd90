/**
 * Which statements leave state on the session that a replacement connection would not have:
 * session and user variables, `SET TRANSACTION` (the next transaction's isolation level or
 * access mode), named locks, table locks, temporary tables, prepared statements. Once a loan
 * has sent one, the pool never swaps its connection silently before a later statement: a
 * job holding `GET_LOCK` must not go on without the lock, nor a transaction start without its
 * `READ ONLY`. Judged from the statement's text, without a round trip; a statement inside a
 * stored procedure (`CALL`) is not seen.
 */

// Anchored forms at the start (after comments): SET (not `SET STATEMENT ... FOR`, which lasts
// one statement), LOCK TABLE(S), CREATE [OR REPLACE] TEMPORARY, PREPARE, HANDLER; anywhere:
// the named-lock functions and user-variable assignments inside a SELECT.
const AT_START = /^\s*(?:(?:\/\*[\s\S]*?\*\/|#[^\n]*\n|--\s[^\n]*\n)\s*)*(?:SET\s+(?!STATEMENT\b)|LOCK\s+TABLES?\b|CREATE\s+(?:OR\s+REPLACE\s+)?TEMPORARY\b|PREPARE\b|HANDLER\b)/i;
const ANYWHERE = /\b(?:GET_LOCK|GET_ADVISORY_LOCK)\s*\(|@[\w$.]+\s*:=|\bINTO\s+@/i;

/** Whether `sql` may leave session state a new connection would lack; see the module doc. */
export function changesSession(sql: string): boolean {
  return AT_START.test(sql) || ANYWHERE.test(sql);
}

/** The statement as error messages and logs show it: its first 80 characters. */
export function statementSummary(sql: string): string {
  const flat = sql.replace(/\s+/g, ' ').trim();
  return flat.length > 80 ? `${flat.slice(0, 77)}...` : flat;
}
