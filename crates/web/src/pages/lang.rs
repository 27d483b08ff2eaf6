//! The languages of the pages of the one interaction flow: the consent page, the sign-in page,
//! its 2-step verification page and its account chooser, and the pages that end a request (the
//! OAuth 1.0a verification code).
//! A request names its language with `hl` (AuthSub, OAuth 1.0a) or `ui_locales` (OAuth 2.0 /
//! OpenID Connect); the flow carries it as `Asks::ui_lang`, and [`Lang::pick`] chooses the page
//! language from it. Other pages stay in English.

/// A language the flow's pages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Lang {
    #[default]
    English,
    German,
    French,
}

impl Lang {
    /// The first supported language of `tags` (one `hl` value, or the space-separated
    /// `ui_locales` list), by base language: `de`, `de-DE` and `de_AT` are German. Nothing
    /// supported (or nothing asked): English.
    pub(crate) fn pick(tags: Option<&str>) -> Lang {
        tags.unwrap_or_default()
            .split_whitespace()
            .find_map(|tag| {
                let base = tag.split(['-', '_']).next().unwrap_or_default();
                match base.to_ascii_lowercase().as_str() {
                    "en" => Some(Lang::English),
                    "de" => Some(Lang::German),
                    "fr" => Some(Lang::French),
                    _ => None,
                }
            })
            .unwrap_or_default()
    }

    /// The language of the one interaction flow's request.
    pub(crate) fn of(asks: &tessera_domain::interaction::Asks) -> Lang {
        Lang::pick(asks.ui_lang.as_deref())
    }

    /// The BCP 47 tag, for `<html lang>` and for `hl` on the way to the sign-in page.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::English => "en",
            Lang::German => "de",
            Lang::French => "fr",
        }
    }

    /// The page strings in this language.
    pub(crate) fn text(self) -> &'static Text {
        match self {
            Lang::English => &EN,
            Lang::German => &DE,
            Lang::French => &FR,
        }
    }
}

/// `text` with each `{name}` of `vars` replaced by its value (in one pass: a value is never
/// read again as a placeholder). Pages escape the result like any other text.
pub(crate) fn fill(text: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let known = after.find('}').and_then(|end| {
            let name = &after[..end];
            vars.iter().find(|(key, _)| *key == name).map(|(_, value)| (end, *value))
        });
        match known {
            Some((end, value)) => {
                out.push_str(value);
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every string of the flow's pages. Placeholders: `{app}`, `{brand}`, `{host}`, `{realm}`,
/// `{project}`, `{email}`, `{hd}`, `{code}`.
pub(crate) struct Text {
    // The consent page.
    pub(crate) consent_title: &'static str,
    pub(crate) realm_heading: &'static str,
    pub(crate) realm_intro: &'static str,
    pub(crate) signed_in_as: &'static str,
    pub(crate) realm_asks: &'static str,
    pub(crate) realm_remembered: &'static str,
    pub(crate) site_heading: &'static str,
    pub(crate) site_unregistered: &'static str,
    pub(crate) site_asks: &'static str,
    pub(crate) exact_scopes: &'static str,
    pub(crate) site_signed: &'static str,
    pub(crate) site_lasting: &'static str,
    pub(crate) site_once: &'static str,
    pub(crate) logo_alt: &'static str,
    pub(crate) project_heading: &'static str,
    pub(crate) project_homepage: &'static str,
    pub(crate) project_support: &'static str,
    pub(crate) project_verified: &'static str,
    pub(crate) project_unverified: &'static str,
    pub(crate) project_asks: &'static str,
    pub(crate) project_remove: &'static str,
    pub(crate) allow: &'static str,
    pub(crate) deny: &'static str,
    // The wrong hosted-domain account.
    pub(crate) wrong_heading: &'static str,
    pub(crate) wrong_message: &'static str,
    pub(crate) wrong_link: &'static str,
    // The OAuth 1.0a `oob` answers.
    pub(crate) granted_heading: &'static str,
    pub(crate) granted_message: &'static str,
    pub(crate) denied_heading: &'static str,
    pub(crate) denied_message: &'static str,
    pub(crate) to_account: &'static str,
    // The sign-in page and the account chooser.
    pub(crate) sign_in: &'static str,
    pub(crate) email: &'static str,
    pub(crate) password: &'static str,
    pub(crate) captcha_legend: &'static str,
    pub(crate) captcha_alt: &'static str,
    pub(crate) captcha_audio: &'static str,
    pub(crate) captcha_listen: &'static str,
    pub(crate) captcha_field: &'static str,
    pub(crate) stay_signed_in: &'static str,
    pub(crate) choose_account: &'static str,
    pub(crate) another_account: &'static str,
    pub(crate) sign_out_all: &'static str,
    pub(crate) error_missing: &'static str,
    pub(crate) error_captcha_wrong: &'static str,
    pub(crate) error_captcha_needed: &'static str,
    pub(crate) error_bad_credentials: &'static str,
    pub(crate) error_throttled: &'static str,
    pub(crate) error_disabled: &'static str,
    pub(crate) error_deleted: &'static str,
    // The 2-step verification page of the sign-in.
    pub(crate) two_step_title: &'static str,
    pub(crate) two_step_intro: &'static str,
    pub(crate) two_step_code: &'static str,
    pub(crate) two_step_verify: &'static str,
    pub(crate) two_step_start_over: &'static str,
    pub(crate) two_step_wrong: &'static str,
    pub(crate) two_step_again: &'static str,
}

static EN: Text = Text {
    consent_title: "Allow access",
    realm_heading: "Sign in to",
    realm_intro: "The site at {realm} asks you to sign in with your {brand} account. It will send you back to {host}.",
    signed_in_as: "Signed in as",
    realm_asks: "It asks to:",
    realm_remembered: "{brand} remembers your answer for this site; you can remove it from your account page.",
    site_heading: "{app} wants access to your account",
    site_unregistered: "This application is not registered. {brand} cannot confirm who runs it; it only knows that it will send you back to {host}. Allow access only if you trust that site.",
    site_asks: "It asks to use these services on your behalf:",
    exact_scopes: "Exact scopes",
    site_signed: "{app} signs every request with its registered key.",
    site_lasting: "Access lasts until you remove it from your account page.",
    site_once: "Access is good for one request.",
    logo_alt: "{app} logo",
    project_heading: "{app} wants to access your account",
    project_homepage: "Learn about {app}:",
    project_support: "Questions?",
    project_verified: "{app} is from the verified project {project}.",
    project_unverified: "This app has not been verified. Only allow it if you trust the developer of {project}.",
    project_asks: "This will allow {app} to:",
    project_remove: "You can remove this access at any time on your account page, under connected apps.",
    allow: "Allow",
    deny: "Deny",
    wrong_heading: "Use another account",
    wrong_message: "This application asked for an account of {hd}; {email} is not one.",
    wrong_link: "Sign in with another account",
    granted_heading: "Access granted",
    granted_message: "Type this verification code into {app}: {code}",
    denied_heading: "Access denied",
    denied_message: "{app} was not given access to your account.",
    to_account: "Go to your account",
    sign_in: "Sign in",
    email: "Email",
    password: "Password",
    captcha_legend: "Type the characters you see in the picture, or hear in the recording",
    captcha_alt: "CAPTCHA picture; if you cannot see it, play the recording below",
    captcha_audio: "CAPTCHA recording: the same characters, spoken over background noise",
    captcha_listen: "Listen to the characters (WAV recording)",
    captcha_field: "Characters in the picture or the recording",
    stay_signed_in: "Stay signed in",
    choose_account: "Choose an account",
    another_account: "Use another account",
    sign_out_all: "Sign out of all accounts",
    error_missing: "Enter your email and password.",
    error_captcha_wrong: "The characters did not match the picture. Try again.",
    error_captcha_needed: "Type the characters you see in the picture.",
    error_bad_credentials: "Wrong email or password. Try again.",
    error_throttled: "Too many failed attempts for this account. Wait a minute and try again.",
    error_disabled: "This account has been disabled.",
    error_deleted: "This account has been deleted.",
    two_step_title: "2-step verification",
    two_step_intro: "Enter the 6-digit code from the authenticator app for {email}.",
    two_step_code: "Code",
    two_step_verify: "Verify",
    two_step_start_over: "Start over",
    two_step_wrong: "Wrong code. Try again.",
    two_step_again: "Sign in again.",
};

static DE: Text = Text {
    consent_title: "Zugriff erlauben",
    realm_heading: "Anmelden bei",
    realm_intro: "Die Website {realm} bittet Sie, sich mit Ihrem {brand}-Konto anzumelden. Danach werden Sie zu {host} zurückgeleitet.",
    signed_in_as: "Angemeldet als",
    realm_asks: "Sie möchte:",
    realm_remembered: "{brand} merkt sich Ihre Antwort für diese Website; Sie können sie auf Ihrer Kontoseite entfernen.",
    site_heading: "{app} möchte auf Ihr Konto zugreifen",
    site_unregistered: "Diese Anwendung ist nicht registriert. {brand} kann nicht bestätigen, wer sie betreibt; bekannt ist nur, dass Sie danach zu {host} zurückgeleitet werden. Erlauben Sie den Zugriff nur, wenn Sie dieser Website vertrauen.",
    site_asks: "Sie möchte diese Dienste in Ihrem Namen nutzen:",
    exact_scopes: "Genaue Bereiche",
    site_signed: "{app} signiert jede Anfrage mit ihrem registrierten Schlüssel.",
    site_lasting: "Der Zugriff gilt, bis Sie ihn auf Ihrer Kontoseite entfernen.",
    site_once: "Der Zugriff gilt für eine einzige Anfrage.",
    logo_alt: "Logo von {app}",
    project_heading: "{app} möchte auf Ihr Konto zugreifen",
    project_homepage: "Mehr über {app}:",
    project_support: "Fragen?",
    project_verified: "{app} gehört zum verifizierten Projekt {project}.",
    project_unverified: "Diese App wurde nicht verifiziert. Erlauben Sie den Zugriff nur, wenn Sie dem Entwickler von {project} vertrauen.",
    project_asks: "{app} erhält damit folgende Berechtigungen:",
    project_remove: "Sie können diesen Zugriff jederzeit auf Ihrer Kontoseite unter „Verbundene Apps“ entfernen.",
    allow: "Zulassen",
    deny: "Ablehnen",
    wrong_heading: "Anderes Konto verwenden",
    wrong_message: "Diese Anwendung verlangt ein Konto von {hd}; {email} gehört nicht dazu.",
    wrong_link: "Mit einem anderen Konto anmelden",
    granted_heading: "Zugriff gewährt",
    granted_message: "Geben Sie diesen Bestätigungscode in {app} ein: {code}",
    denied_heading: "Zugriff abgelehnt",
    denied_message: "{app} hat keinen Zugriff auf Ihr Konto erhalten.",
    to_account: "Zu Ihrem Konto",
    sign_in: "Anmelden",
    email: "E-Mail-Adresse",
    password: "Passwort",
    captcha_legend: "Geben Sie die Zeichen ein, die Sie im Bild sehen oder in der Aufnahme hören",
    captcha_alt: "CAPTCHA-Bild; wenn Sie es nicht sehen können, spielen Sie die Aufnahme unten ab",
    captcha_audio: "CAPTCHA-Aufnahme: dieselben Zeichen, gesprochen vor Hintergrundgeräuschen",
    captcha_listen: "Zeichen anhören (WAV-Aufnahme)",
    captcha_field: "Zeichen aus dem Bild oder der Aufnahme",
    stay_signed_in: "Angemeldet bleiben",
    choose_account: "Konto auswählen",
    another_account: "Anderes Konto verwenden",
    sign_out_all: "Von allen Konten abmelden",
    error_missing: "Geben Sie Ihre E-Mail-Adresse und Ihr Passwort ein.",
    error_captcha_wrong: "Die Zeichen stimmen nicht mit dem Bild überein. Versuchen Sie es noch einmal.",
    error_captcha_needed: "Geben Sie die Zeichen ein, die Sie im Bild sehen.",
    error_bad_credentials: "E-Mail-Adresse oder Passwort ist falsch. Versuchen Sie es noch einmal.",
    error_throttled: "Zu viele fehlgeschlagene Versuche für dieses Konto. Warten Sie eine Minute und versuchen Sie es dann noch einmal.",
    error_disabled: "Dieses Konto wurde deaktiviert.",
    error_deleted: "Dieses Konto wurde gelöscht.",
    two_step_title: "Bestätigung in zwei Schritten",
    two_step_intro: "Geben Sie den sechsstelligen Code aus der Authenticator-App für {email} ein.",
    two_step_code: "Code",
    two_step_verify: "Bestätigen",
    two_step_start_over: "Neu beginnen",
    two_step_wrong: "Falscher Code. Versuchen Sie es noch einmal.",
    two_step_again: "Melden Sie sich noch einmal an.",
};

static FR: Text = Text {
    consent_title: "Autoriser l’accès",
    realm_heading: "Se connecter à",
    realm_intro: "Le site {realm} vous demande de vous connecter avec votre compte {brand}. Vous serez ensuite redirigé vers {host}.",
    signed_in_as: "Connecté en tant que",
    realm_asks: "Il demande à :",
    realm_remembered: "{brand} mémorise votre réponse pour ce site ; vous pouvez la supprimer depuis la page de votre compte.",
    site_heading: "{app} souhaite accéder à votre compte",
    site_unregistered: "Cette application n’est pas enregistrée. {brand} ne peut pas confirmer qui la gère ; on sait seulement qu’elle vous redirigera vers {host}. N’autorisez l’accès que si vous faites confiance à ce site.",
    site_asks: "Elle demande à utiliser ces services en votre nom :",
    exact_scopes: "Champs d’accès exacts",
    site_signed: "{app} signe chaque requête avec sa clé enregistrée.",
    site_lasting: "L’accès reste valable jusqu’à ce que vous le supprimiez depuis la page de votre compte.",
    site_once: "L’accès n’est valable que pour une seule requête.",
    logo_alt: "Logo de {app}",
    project_heading: "{app} souhaite accéder à votre compte",
    project_homepage: "En savoir plus sur {app} :",
    project_support: "Des questions ?",
    project_verified: "{app} provient du projet vérifié {project}.",
    project_unverified: "Cette application n’a pas été vérifiée. Ne l’autorisez que si vous faites confiance au développeur de {project}.",
    project_asks: "{app} pourra :",
    project_remove: "Vous pouvez supprimer cet accès à tout moment depuis la page de votre compte, sous « Applications connectées ».",
    allow: "Autoriser",
    deny: "Refuser",
    wrong_heading: "Utiliser un autre compte",
    wrong_message: "Cette application demande un compte de {hd} ; {email} n’en fait pas partie.",
    wrong_link: "Se connecter avec un autre compte",
    granted_heading: "Accès accordé",
    granted_message: "Saisissez ce code de validation dans {app} : {code}",
    denied_heading: "Accès refusé",
    denied_message: "{app} n’a pas obtenu l’accès à votre compte.",
    to_account: "Accéder à votre compte",
    sign_in: "Connexion",
    email: "Adresse e-mail",
    password: "Mot de passe",
    captcha_legend: "Saisissez les caractères que vous voyez sur l’image ou entendez dans l’enregistrement",
    captcha_alt: "Image CAPTCHA ; si vous ne pouvez pas la voir, écoutez l’enregistrement ci-dessous",
    captcha_audio: "Enregistrement CAPTCHA : les mêmes caractères, prononcés sur un bruit de fond",
    captcha_listen: "Écouter les caractères (enregistrement WAV)",
    captcha_field: "Caractères de l’image ou de l’enregistrement",
    stay_signed_in: "Rester connecté",
    choose_account: "Choisir un compte",
    another_account: "Utiliser un autre compte",
    sign_out_all: "Se déconnecter de tous les comptes",
    error_missing: "Saisissez votre adresse e-mail et votre mot de passe.",
    error_captcha_wrong: "Les caractères ne correspondent pas à l’image. Réessayez.",
    error_captcha_needed: "Saisissez les caractères que vous voyez sur l’image.",
    error_bad_credentials: "Adresse e-mail ou mot de passe incorrect. Réessayez.",
    error_throttled: "Trop de tentatives infructueuses pour ce compte. Patientez une minute, puis réessayez.",
    error_disabled: "Ce compte a été désactivé.",
    error_deleted: "Ce compte a été supprimé.",
    two_step_title: "Validation en deux étapes",
    two_step_intro: "Saisissez le code à six chiffres de l'application d'authentification pour {email}.",
    two_step_code: "Code",
    two_step_verify: "Valider",
    two_step_start_over: "Recommencer",
    two_step_wrong: "Code incorrect. Réessayez.",
    two_step_again: "Reconnectez-vous.",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_base_language_of_the_first_supported_tag() {
        assert_eq!(Lang::pick(Some("de")), Lang::German);
        assert_eq!(Lang::pick(Some("de-DE")), Lang::German);
        assert_eq!(Lang::pick(Some("fr_CA")), Lang::French);
        assert_eq!(Lang::pick(Some("FR-ca")), Lang::French);
        assert_eq!(Lang::pick(Some("es de fr")), Lang::German);
        assert_eq!(Lang::pick(Some("xx")), Lang::English);
        assert_eq!(Lang::pick(Some("")), Lang::English);
        assert_eq!(Lang::pick(None), Lang::English);
    }

    #[test]
    fn fills_placeholders_once() {
        let filled = fill("{app} by {brand} {other}", &[("app", "{brand}"), ("brand", "B")]);
        assert_eq!(filled, "{brand} by B {other}");
    }
}
