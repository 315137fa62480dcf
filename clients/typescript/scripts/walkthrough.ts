/**
 * The README's v2 walk-through (design §7) through the generated TypeScript client, against a
 * running server: log in, create a product, list products, order 2 units, wait for
 * RESERVED, pay, see that cancelling a paid order is a 409 carrying current_status, then
 * cancel a second order and see its stock come back.
 *
 * Usage: node dist/scripts/walkthrough.js BASE_URL EMAIL PASSWORD
 * Prints one JSON line per step; exits non-zero on the first surprise.
 */
import { createTaskhubClient, logIn, type Schemas } from "../src/index.js";

const [baseUrl, email, password] = process.argv.slice(2);
if (baseUrl === undefined || email === undefined || password === undefined) {
  throw new Error("usage: walkthrough.js BASE_URL EMAIL PASSWORD");
}

function step(name: string, value: unknown): void {
  process.stdout.write(`${JSON.stringify({ step: name, value })}\n`);
}

function fail(message: string): never {
  throw new Error(message);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitWhilePending(
  client: ReturnType<typeof createTaskhubClient>,
  orderId: number,
): Promise<Schemas["OrderOut"]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { data, error } = await client.GET("/api/v2/orders/{order_id}", {
      params: { path: { order_id: orderId } },
    });
    if (error !== undefined) fail(`read order: ${error.status} ${error.detail}`);
    if (data.status !== "PENDING") return data;
    if (Date.now() > deadline) fail("the order was never reserved");
    await sleep(100);
  }
}

async function main(): Promise<void> {
  const anonymous = createTaskhubClient(baseUrl!);
  const token = await logIn(anonymous, email!, password!);
  step("login", token.length > 0);
  const client = createTaskhubClient(baseUrl!, token);

  const created = await client.POST("/api/v2/products", {
    body: { sku: "SKU-1001", name: "T-Shirt", price_cents: 1999, stock: 10 },
  });
  if (created.error !== undefined) fail(`create product: ${created.error.detail}`);
  const product = created.data;
  step("product", { id: product.id, stock: product.stock, location: created.response.headers.get("location") });

  const listed = await anonymous.GET("/api/v2/products", { params: { query: { limit: 50 } } });
  if (listed.error !== undefined) fail(`list products: ${listed.error.detail}`);
  step("products", listed.data.items.map((item) => item.sku));

  const order = async (): Promise<Schemas["OrderOut"]> => {
    const placed = await client.POST("/api/v2/orders", {
      body: { items: [{ product_id: product.id, quantity: 2 }] },
    });
    if (placed.error !== undefined) fail(`create order: ${placed.error.detail}`);
    return placed.data;
  };
  const first = await order();
  step("order", { id: first.id, status: first.status, total_cents: first.total_cents });

  const reserved = await waitWhilePending(client, first.id);
  step("reserved", reserved.status);

  const paid = await client.POST("/api/v2/orders/{order_id}/pay", {
    params: { path: { order_id: first.id } },
  });
  if (paid.error !== undefined) fail(`pay: ${paid.error.detail}`);
  step("paid", paid.data.status);

  const refused = await client.POST("/api/v2/orders/{order_id}/cancel", {
    params: { path: { order_id: first.id } },
  });
  if (refused.error === undefined) fail("cancelling a paid order succeeded");
  const currentStatus = "current_status" in refused.error ? refused.error.current_status : null;
  step("cancel-refused", { status: refused.error.status, current_status: currentStatus });

  const second = await order();
  await waitWhilePending(client, second.id);
  const cancelled = await client.POST("/api/v2/orders/{order_id}/cancel", {
    params: { path: { order_id: second.id } },
  });
  if (cancelled.error !== undefined) fail(`cancel: ${cancelled.error.detail}`);
  step("cancelled", cancelled.data.status);

  const deadline = Date.now() + 30_000;
  for (;;) {
    const read = await anonymous.GET("/api/v2/products/{product_id}", {
      params: { path: { product_id: product.id } },
    });
    if (read.error !== undefined) fail(`read product: ${read.error.detail}`);
    if (read.data.stock === 8) break;
    if (Date.now() > deadline) fail(`stock stayed at ${read.data.stock}`);
    await sleep(100);
  }
  step("stock", 8);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
