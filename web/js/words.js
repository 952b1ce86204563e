// What a refusal of the API means, in the words of the people at the front desk. One place for every page:
// the code says what went wrong, the field where (a page may pass a more precise sentence it worked out
// from its own values, e.g. which weekday's hours are the wrong way round).

export const DAY_NAMES = {
  mon: "Monday",
  tue: "Tuesday",
  wed: "Wednesday",
  thu: "Thursday",
  fri: "Friday",
  sat: "Saturday",
  sun: "Sunday",
};

function tooLarge(field) {
  if (field?.startsWith("alerts.emails")) return "That is too many addresses: at most 20 email addresses.";
  if (field?.startsWith("alerts.sms_numbers")) return "That is too many phone numbers: at most 10.";
  if (field === "body") return "This message is too long: at most 4,000 characters.";
  return "This text is too long: at most 1,000 characters.";
}

export function explain(error) {
  const field = error.field ?? "";
  switch (error.code) {
    case "network":
      return "The service cannot be reached. Check the internet connection and try again; nothing was changed.";
    case "unauthenticated":
      return "Your sign-in has ended. Sign in again to go on.";
    case "forbidden":
      return "Your role may not change this. Ask a practice admin.";
    case "not_found":
      return "This department no longer exists: someone may have removed it. Reload the page.";
    case "invalid_email":
      return "Check the email addresses: each needs an @ and a domain (desk@happypaws.com), with a comma between two addresses.";
    case "invalid_phone":
      return "This is not a phone number that can receive texts. Write it with its area code, e.g. (201) 555-0123.";
    case "sms_alerts_unavailable_in_country":
      return "Text alerts go only to U.S. and Canadian phone numbers.";
    case "reminder_needs_email":
      return "The reminder is sent by email: add at least one email address to the new message alert first.";
    case "duplicate_department_name":
      return "Another department already has this name. Choose a different one.";
    case "invalid_name":
      return "Give a name of 1 to 80 characters.";
    case "too_large":
      return tooLarge(field);
    case "invalid_hours":
      return field.startsWith("unresolved_reminder")
        ? "Choose a reminder time between 00:00 and 23:59, or leave it empty."
        : "Check these hours: write times as HH:MM (e.g. 09:00), with the opening time before the closing time.";
    case "invalid_date_override":
      return "Check these dates: the last date on or after the first, and no date in two entries.";
    case "default_department":
      return "The default department cannot be removed or renamed, and it is always visible in the mobile app.";
    case "department_has_open_conversations":
      return "This department still has open chats, so it cannot be removed. End those chats, or transfer them to another department, first.";
    case "conversation_resolved":
      return "This conversation has ended, so it can no longer be transferred.";
    case "same_department":
      return "The conversation is already in this department. Choose another one.";
    case "department_not_visible":
      return "This department does not take chats from the app or the website. Choose another one.";
    case "after_hours":
      return "We are closed right now, and this department does not take messages outside its chat hours. Your message was not sent.";
    case "offline":
      return "Chat is offline right now, so your message was not sent.";
    case "sms_opted_out":
      return "This pet owner has opted out of texts from the practice, so the reply was not sent.";
    case "whatsapp_window_closed":
      return "WhatsApp allows a reply only within 24 hours of the owner's last message, so the reply was not sent.";
    case "not_retryable":
      return "This reply cannot be sent again: it was delivered, or it is still on its way.";
    case "stale_etag":
      return "Someone else saved changes to this department after you opened it.";
    case "practice_not_set_up":
      return "The practice is not set up yet.";
    case "invalid_time_zone":
      return "Choose a time zone from the list.";
    case "invalid_country":
      return "Write the country as its two-letter code, e.g. US, CA or GB.";
    case "sms_number_in_use":
      return "This texting number already belongs to another practice.";
    case "invalid_value":
      return error.message ? `Check this value: ${error.message}.` : "Check this value.";
    case "malformed_request":
      return "The page sent something the service did not understand; nothing was changed. Reload the page and try again.";
    case "unavailable":
      return "The service is briefly unavailable; nothing was changed. Try again in a moment.";
    case "rate_limited":
      return "Too many changes at once. Wait a moment and try again.";
    default:
      return error.message ? `The service refused: ${error.message}.` : "Something went wrong; nothing was changed. Try again.";
  }
}
