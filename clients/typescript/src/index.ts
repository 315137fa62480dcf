/**
 * The taskhub API client: the paths and schemas are generated from the app's OpenAPI
 * document by openapi-typescript (`make clients` writes src/schema.d.ts); requests go
 * through openapi-fetch, typed by them.
 */
import createClient, { type Client, type Middleware } from "openapi-fetch";

import type { components, paths } from "./schema.js";

export type { components, operations, paths } from "./schema.js";
export type Schemas = components["schemas"];
export type TaskhubClient = Client<paths>;

/** A client of the API at `baseUrl` (e.g. http://localhost:8000), optionally with a token. */
export function createTaskhubClient(baseUrl: string, token?: string): TaskhubClient {
  const client = createClient<paths>({ baseUrl });
  if (token !== undefined) {
    client.use(bearer(token));
  }
  return client;
}

/** Middleware sending `Authorization: Bearer <token>` with every request. */
export function bearer(token: string): Middleware {
  return {
    onRequest({ request }) {
      request.headers.set("Authorization", `Bearer ${token}`);
      return request;
    },
  };
}

/** The OAuth2 password form, as the login operations take it. */
export function formBody(body: Schemas["LoginForm"]): URLSearchParams {
  const form = new URLSearchParams();
  for (const [key, value] of Object.entries(body)) {
    if (value !== undefined && value !== null) {
      form.set(key, String(value));
    }
  }
  return form;
}

/** Log in with an email and password; returns the bearer token. */
export async function logIn(
  client: TaskhubClient,
  username: string,
  password: string,
): Promise<string> {
  const { data, error } = await client.POST("/api/v2/auth/login/access-token", {
    body: { username, password },
    bodySerializer: formBody,
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
  });
  if (error !== undefined) {
    throw new Error(`login refused: ${error.status} ${error.detail}`);
  }
  return data.access_token;
}
