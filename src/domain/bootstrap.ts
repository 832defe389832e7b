/**
 * Start-up bootstrap of the `admin` user (contract, "Running it"): TESSERA_BOOTSTRAP_TOKEN and
 * TESSERA_BOOTSTRAP_PASSWORD ensure it; with neither and an empty store, an admin token is made
 * and returned once so main can print it.
 */
import type { Services } from './services.js';

export const ADMIN_USERNAME = 'admin';

export async function bootstrapAdmin(services: Services): Promise<{ printedToken: string | null }> {
  const { config, users, appPasswords, store } = services;
  const { bootstrapToken, bootstrapPassword } = config;
  let admin = await users.getByUsername(ADMIN_USERNAME);
  if (!bootstrapToken && !bootstrapPassword) {
    if (!admin) {
      if ((await store.users.count({})) > 0) return { printedToken: null };
      admin = await users.create({ username: ADMIN_USERNAME, name: 'Administrator', isAdmin: true });
    } else if (!(await firstStartCutShort(services, admin.id, admin.passwordHash))) {
      return { printedToken: null };
    }
    const { secret } = await appPasswords.create({ userId: admin.id, description: 'first-start admin token' });
    return { printedToken: secret };
  }
  if (!admin) admin = await users.create({ username: ADMIN_USERNAME, name: 'Administrator', isAdmin: true });
  else if (!admin.isAdmin || !admin.isActive) admin = await users.update(admin.id, { isAdmin: true, isActive: true });
  if (bootstrapToken) await appPasswords.ensure(admin.id, bootstrapToken, 'TESSERA_BOOTSTRAP_TOKEN');
  // Only when it differs: a new password ends the user's /device sessions, which a restart should not.
  if (bootstrapPassword && !(await users.verifyPassword(ADMIN_USERNAME, bootstrapPassword))) await users.setPassword(admin.id, bootstrapPassword);
  return { printedToken: null };
}

/**
 * A first start stopped between creating `admin` and its token leaves `admin` as the only user,
 * with no password and no app password: nobody could ever sign in, so finish the first start.
 */
async function firstStartCutShort(services: Services, adminId: string, passwordHash: string | null): Promise<boolean> {
  const { store } = services;
  if (passwordHash) return false;
  if ((await store.users.count({})) !== 1) return false;
  return (await store.appPasswords.count({ userId: adminId })) === 0;
}
