/** An error the API answers with: HTTP status, stable code and a sentence a user can act on. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    readonly description: string,
    readonly errors?: string[],
  ) {
    super(description);
  }

  toBody(): { description: string; code: string; errors?: string[] } {
    return this.errors === undefined
      ? { description: this.description, code: this.code }
      : { description: this.description, code: this.code, errors: this.errors };
  }
}
