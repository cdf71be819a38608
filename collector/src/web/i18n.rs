//! The UI's words in Russian (default) and English.

/// UI language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Русский.
    Ru,
    /// English.
    En,
}

impl Lang {
    /// `ru` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Ru => "ru",
            Self::En => "en",
        }
    }

    /// From a code; anything else is Russian.
    pub fn from_code(s: &str) -> Self {
        if s == "en" { Self::En } else { Self::Ru }
    }

    /// The compliance exports' language.
    pub fn export(self) -> crate::compliance::export::Lang {
        match self {
            Self::Ru => crate::compliance::export::Lang::Ru,
            Self::En => crate::compliance::export::Lang::En,
        }
    }
}

/// (key, Russian, English).
const WORDS: &[(&str, &str, &str)] = &[
    ("app", "Parta — оборудование школ", "Parta — school equipment"),
    ("overview", "Обзор", "Overview"),
    ("connectivity", "Связь (ЕСПД)", "Connectivity (ESPD)"),
    ("compliance", "Соответствие стандарту", "Compliance"),
    ("tokens", "Токены API", "API tokens"),
    ("users", "Учётные записи", "Accounts"),
    ("sign_in", "Войти", "Sign in"),
    ("sign_out", "Выйти", "Sign out"),
    ("login", "Логин", "Login"),
    ("password", "Пароль", "Password"),
    ("bad_login", "Неверный логин или пароль.", "Wrong login or password."),
    (
        "locked",
        "Слишком много неудачных попыток. Повторите через минуту.",
        "Too many failed attempts. Try again in a minute.",
    ),
    (
        "scope_unresolved",
        "Муниципалитет в области доступа этой учётной записи указан без региона, а такое название есть в нескольких регионах (или его нет в реестре школ): школы не показываются. Попросите администратора указать регион: municipality:РЕГИОН/НАЗВАНИЕ.",
        "This account's scope names a municipality without its region, and several regions have that name (or the school registry has none): no school is shown. Ask an administrator to set the region: municipality:REGION/NAME.",
    ),
    (
        "busy",
        "Сейчас проверяется слишком много входов. Повторите через несколько секунд.",
        "Too many sign-ins are being checked right now. Try again in a few seconds.",
    ),
    ("unavailable", "Хранилище недоступно. Повторите позже.", "Storage is unavailable. Try again later."),
    ("forbidden", "Нет доступа", "Access denied"),
    ("forbidden_text", "Эта страница вне вашей зоны доступа.", "This page is outside your scope."),
    ("not_found", "Не найдено", "Not found"),
    ("region", "Регион", "Region"),
    ("municipality", "Муниципалитет", "Municipality"),
    ("school", "Школа", "School"),
    ("schools", "Школы", "Schools"),
    ("device", "Устройство", "Device"),
    ("devices", "Устройства", "Devices"),
    ("period", "Период", "Period"),
    ("from", "с", "from"),
    ("to", "по", "to"),
    ("apply", "Показать", "Show"),
    ("agents_online", "Агенты на связи (24 ч) / всего", "Agents online (24 h) / known"),
    ("used_share", "Доля устройств в работе за день", "Share of devices in use per day"),
    ("in_use_per_device", "Часов работы на устройство в день", "Hours in use per device a day"),
    ("espd_status", "ЕСПД: школ с нормативной скоростью", "ESPD: schools at the required speed"),
    ("compliance_status", "Соответствие: школ без замечаний", "Compliance: schools without findings"),
    ("no_data", "нет данных", "no data"),
    ("not_computed", "не рассчитано", "not computed"),
    ("outside_registry", "(вне реестра)", "(not in the registry)"),
    ("rooms_devices", "Кабинеты и устройства", "Rooms and devices"),
    ("room", "Кабинет", "Room"),
    ("class", "Класс оборудования", "Equipment class"),
    ("kind", "Тип", "Kind"),
    ("in_use_h", "В работе, ч", "In use, h"),
    ("powered_h", "Включено, ч", "Powered on, h"),
    ("days_used", "Дней в работе", "Days in use"),
    ("last_seen", "Последний отчёт", "Last report"),
    ("heatmap", "Использование по дням недели и часам", "Use by weekday and hour"),
    (
        "heatmap_note",
        "Среднее число устройств в работе в этот час; часовой пояс",
        "Average devices in use in that hour; time zone",
    ),
    (
        "daily_by_class",
        "Часы в день по классам оборудования (на устройство)",
        "Hours a day per equipment class (per device)",
    ),
    ("legend_powered", "включено", "powered on"),
    ("legend_in_use", "в работе", "in use"),
    ("inventory", "Инвентаризация", "Inventory"),
    ("usage_timeline", "Использование по дням", "Use per day"),
    ("interfaces", "Интерфейсы", "Interfaces"),
    ("pages", "Отпечатано страниц", "Pages printed"),
    ("uptime", "Время работы с загрузки", "Uptime"),
    ("date", "Дата", "Date"),
    ("checks", "Проверок", "Checks"),
    ("passed", "Успешно", "Passed"),
    ("tests", "Замеров скорости", "Speed tests"),
    ("met", "С нормативной скоростью", "At the required speed"),
    ("required", "Норматив, Мбит/с", "Required, Mbit/s"),
    ("verdict", "Вывод", "Verdict"),
    ("meets", "соответствует", "meets"),
    ("below", "ниже норматива", "below contract"),
    ("export", "Выгрузить", "Export"),
    ("scope", "Охват", "Scope"),
    ("compute", "Рассчитать", "Compute"),
    ("computed_at", "Рассчитано", "Computed"),
    ("status", "Статус", "Status"),
    ("st_short", "не хватает на балансе", "short on the books"),
    ("st_not_seen", "не видно в сети", "not seen"),
    ("st_underused", "мало используется", "underused"),
    ("st_ok", "в норме", "ok"),
    ("category", "Категория", "Category"),
    ("required_qty", "Требуется", "Required"),
    ("on_books", "На балансе", "On the books"),
    ("seen", "В сети", "Seen"),
    ("used", "Используется", "Used"),
    ("create_token", "Создать токен", "Create a token"),
    ("comment", "Комментарий", "Comment"),
    ("revoke", "Отозвать", "Revoke"),
    ("revoked", "отозван", "revoked"),
    ("enrollment", "Регистрация устройства", "Device enrollment"),
    (
        "update_status",
        "Обновить выводы для обзора (90 дней до вчера)",
        "Update the overview's verdicts (90 days to yesterday)",
    ),
    ("state", "Состояние", "State"),
    ("enrolled_at", "Зарегистрировано", "Enrolled"),
    ("credential_until", "Сертификат действует до", "Certificate valid until"),
    ("school_history", "Школы устройства", "School history"),
    ("since", "С", "Since"),
    ("by_whom", "Кем", "By"),
    ("from_start", "с регистрации", "since enrollment"),
    ("moved", "перемещено", "moved"),
    ("enrolled", "зарегистрировано", "enrolled"),
    ("active", "действует", "active"),
    ("disabled", "отключена", "disabled"),
    ("created", "Создан", "Created"),
    ("new_token", "Новый токен (показывается один раз):", "New token (shown once):"),
    ("role", "Роль", "Role"),
    ("bad_request", "Неверный запрос", "Bad request"),
    ("print", "Печать", "Print"),
    ("verdicts", "Последние выводы по школам", "Latest verdicts per school"),
    ("csrf", "Форма устарела, обновите страницу.", "The form has expired; reload the page."),
    ("policies", "Политики", "Policies"),
    ("policy", "Политика", "Policy"),
    ("policy_scope", "Область", "Scope"),
    ("policy_version", "Версия", "Version"),
    ("policy_author", "Автор", "Author"),
    ("policy_when", "Когда", "When"),
    ("policy_document", "Документ (TOML)", "Document (TOML)"),
    ("policy_save", "Проверить и сохранить", "Check and save"),
    ("policy_history", "История изменений", "History"),
    ("policy_removed", "удалена", "removed"),
    ("policy_set", "задана", "set"),
    ("policy_effective", "Действующая политика", "Effective policy"),
    ("policy_running", "Применена агентом", "Applied by the agent"),
    ("policy_current", "Текущая версия", "Current version"),
    ("policy_state", "Состояние политики", "Policy state"),
    ("policy_reason", "Причина отказа", "Reason for refusal"),
    ("policy_state_none", "нет политики", "no policy"),
    ("policy_state_current", "применена", "applied"),
    ("policy_state_pending", "ожидает применения", "pending"),
    ("policy_state_drifted", "не применена (расхождение)", "not applied (drifted)"),
    ("policy_state_refused", "отклонена устройством", "refused by the device"),
    (
        "policy_secrets_hint",
        "Секреты SNMP (community, auth_pass, priv_pass) не показываются: оставьте <secret>, чтобы сохранить прежнее значение, или введите новое.",
        "SNMP secrets (community, auth_pass, priv_pass) are never shown: leave <secret> to keep the stored value, or type a new one.",
    ),
    (
        "policy_refused",
        "Политика не сохранена, ничего не изменилось:",
        "The policy was not saved; nothing changed:",
    ),
    ("policy_new", "Новая или изменённая политика", "New or changed policy"),
    ("releases", "Обновления агента", "Agent releases"),
    ("release_rollouts", "Раскатка по каналам", "Rollouts"),
    ("release_channel", "Канал", "Channel"),
    ("release_version", "Версия", "Version"),
    ("release_to_whom", "Кому предлагается", "Offered to"),
    ("release_of_devices", "устройств", "of devices"),
    ("release_retry", "Повтор", "Retry"),
    (
        "release_no_rollout",
        "Ни один выпуск не раскатывается: parta-collector release rollout --channel stable --percent 10",
        "No release is rolled out: parta-collector release rollout --channel stable --percent 10",
    ),
    ("release_target", "Платформа", "Platform"),
    ("release_size", "Размер, МБ", "Size, MB"),
    ("release_added", "Добавлен", "Added"),
    ("release_states", "Состояние устройств", "Where devices stand"),
    ("release_devices", "Устройств", "Devices"),
    ("release_reasons", "Причины", "Reasons"),
    ("release_problems", "Сбои, отказы и откаты", "Failed, refused, rolled back"),
    ("release_running", "Работала версия", "Was running"),
    ("release_first", "Показаны первые", "Showing the first"),
    ("release_agent_update", "Обновление агента", "Agent update"),
    ("upd_offered", "предложено", "offered"),
    ("upd_downloading", "загружается", "downloading"),
    ("upd_downloaded", "загружено", "downloaded"),
    ("upd_installing", "устанавливается", "installing"),
    ("upd_installed", "установлено", "installed"),
    ("upd_healthy", "работает исправно", "healthy"),
    ("upd_rolled_back", "откачено к прежней версии", "rolled back"),
    ("upd_failed", "сбой", "failed"),
    ("upd_refused", "отклонено устройством", "refused by the device"),
];

/// The word for `key`; the key itself if it has none (a bug the unit test catches for the
/// keys it knows).
pub fn t(lang: Lang, key: &'static str) -> &'static str {
    WORDS.iter().find(|w| w.0 == key).map_or(key, |w| if lang == Lang::Ru { w.1 } else { w.2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_unique_and_translated() {
        let mut keys: Vec<&str> = WORDS.iter().map(|w| w.0).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate keys");
        for (k, ru, en) in WORDS {
            assert!(!ru.is_empty() && !en.is_empty(), "{k}");
        }
        assert_eq!(t(Lang::Ru, "overview"), "Обзор");
        assert_eq!(t(Lang::En, "overview"), "Overview");
    }
}
