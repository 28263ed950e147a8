// Errors of @postern/auth as values with a stable code; messages tell the operator what to do.
import { PosternError } from "@postern/core";

export type AuthErrorCode =
  | "POSTERN_AUTH_PASSWORD_FILE_UNREADABLE"
  | "POSTERN_AUTH_PASSWORD_FILE_INVALID"
  | "POSTERN_AUTH_PASSWORD_FILE_LOCKED"
  | "POSTERN_AUTH_BAD_USERNAME"
  | "POSTERN_AUTH_USER_EXISTS"
  | "POSTERN_AUTH_NO_SUCH_USER"
  | "POSTERN_AUTH_HASH_UNSUPPORTED";

export class AuthError extends PosternError {
  declare readonly code: AuthErrorCode;

  constructor(code: AuthErrorCode, message: string, options: { cause?: unknown; hook?: string } = {}) {
    super(code, message, { ...options, plugin: "@postern/auth" });
  }
}
