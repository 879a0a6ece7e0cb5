// What the demo page says, kept apart from the DOM so that node tests check
// it (test/words.test.js): the sign-in methods as they really are on this
// stack, plain names for credential sets, and the grants' summary.

/**
 * @typedef {object} SignInWords
 * @property {string} srp       the SRP option's label
 * @property {string} password  the password option's label
 * @property {{USER_SRP_AUTH: string, USER_PASSWORD_AUTH: string}} notes what each method does with the password, shown under the choice
 */

/**
 * The sign-in methods, described as they are for this configuration: the
 * password flow sends the password to Cognito, encrypted only when
 * Cognito's endpoint is https (the local stack's moto is plain http).
 * @param {{region: string, awsEndpoint?: string}} config
 * @returns {SignInWords}
 */
export function signInWords(config) {
  const cognito = new URL(config.awsEndpoint || `https://cognito-idp.${config.region}.amazonaws.com`);
  const tls = cognito.protocol === 'https:';
  return {
    srp: 'SRP (the password never leaves this page)',
    password: tls ? 'Password (sent to Cognito over TLS)' : 'Password (sent unencrypted, plain HTTP)',
    notes: {
      USER_SRP_AUTH: 'The page proves that it knows the password without sending it (Secure Remote Password).',
      USER_PASSWORD_AUTH: tls
        ? `The password is sent to Cognito at ${cognito.host}, encrypted with TLS.`
        : `The password is sent to Cognito at ${cognito.host} over plain HTTP, unencrypted: ` +
          'fine for a test stack on this machine, never for a real password.',
    },
  };
}

/**
 * Plain names for credential sets, by the projects whose grants each holds:
 * "project demo", "projects demo, archive". Sets that would share a name
 * (one project's grants split over several) are told apart as "part 1 of 2".
 * @param {{grants: {projects: string[]}[]}[]} sets
 * @returns {string[]}
 */
export function setNames(sets) {
  const names = sets.map((set) => {
    const projects = [...new Set(set.grants.flatMap((g) => g.projects))];
    const shown = projects.length > 3 ? [...projects.slice(0, 2), `${projects.length - 2} more`] : projects;
    return projects.length === 0 ? 'no project' : `project${projects.length > 1 ? 's' : ''} ${shown.join(', ')}`;
  });
  return names.map((name, i) => {
    const same = names.flatMap((n, j) => (n === name ? [j] : []));
    return same.length > 1 ? `${name} (part ${same.indexOf(i) + 1} of ${same.length})` : name;
  });
}

/**
 * The line above the grants: how many places, how many sets of credentials
 * reach them, and until when.
 * @param {number} places
 * @param {number} sets
 * @param {string} until the credentials' earliest expiry, as a time of day
 */
export function grantsSummary(places, sets, until) {
  const what = `${places} place${places === 1 ? '' : 's'}`;
  if (sets <= 1) {
    return `${what}. One set of temporary credentials reaches ${places === 1 ? 'it' : 'them all'}, until ${until}; the page fetches new ones before they run out.`;
  }
  return (
    `${what}, too many for one set of temporary credentials: ${sets} sets, each named in the Credentials column, ` +
    `until ${until}. The page signs each request with the set that holds its place.`
  );
}
